"""Full fine-tuning baselines: ft, ft_top2 (FT^Top2), ft_qv, bitfit.

- ``ft``: every weight trains (GPT-2's lm_head is tied to wte: one tensor, counted once).
- ``ft_top2``: the last two transformer blocks + the final LayerNorm (GPT-2 ``ln_f``, LLaMA
  ``norm``; BERT/RoBERTa have none), as FT^Top2 in the LoRA paper (Li & Liang's baseline).
  GPT-2 medium: 2 * (12 d^2 + 13 d) + 2 d = 25,194,496.
- ``ft_qv``: only the Wq and Wv weight matrices; biases are NOT trained and not counted.
  GPT-2 medium: 24 * 2 * d^2 = 50,331,648 = 48.00 * 2^20. GPT-2's fused c_attn is split into
  three parameters (``q_weight``, ``k_weight``, ``v_weight``, each (d, d) input-major) of which
  only q/v train. We chose a split parameter over a gradient mask on purpose: with AdamW a
  masked (zero-gradient) k slice would still be changed by decoupled weight decay, and the
  trainable count would not be visible from ``requires_grad``. ``merge`` turns the split module
  back into a plain Conv1D (same output).
- ``bitfit``: all bias terms (including LayerNorm biases), as BitFit (Ben Zaken et al., 2022).
  Not applicable to LLaMA (no biases).

A classification head (``classifier``/``score``) stays trainable in all of them (train_head).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
from transformers.pytorch_utils import Conv1D

from lodabench.methods import targets
from lodabench.methods.base import MethodSpec, and_model, check_family, hp, method_keys, rng


@dataclass
class FTConfig:
    name: str = hp("ft", "config name of the method")
    train_head: bool = hp(True, "keep a classification head (classifier/score) trainable")

    families = ("gpt2", "bert", "roberta", "llama")

    def validate(self, model: nn.Module | None = None) -> None:
        and_model(self, model)  # no value to check: the family, once a model is given

    def check_model(self, model: nn.Module) -> None:
        check_family(self, model, self.families)


@dataclass
class FTTop2Config(FTConfig):
    name: str = hp("ft_top2", "config name of the method")
    top_layers: int = hp(2, "number of last transformer blocks that train (LoRA paper FT^Top2: 2)", rng("[1, inf)"))

    def validate(self, model: nn.Module | None = None) -> None:
        from lodabench.methods.base import check_positive_int

        check_positive_int(self, "top_layers")
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        super().check_model(model)
        from lodabench.methods.base import fail

        if self.top_layers > targets.num_layers(model):
            n = targets.num_layers(model)
            raise fail("top_layers", self.top_layers, f"exceeds the model's {n} layers", f"set method.top_layers <= {n}")


@dataclass
class FTQVConfig(FTConfig):
    name: str = hp("ft_qv", "config name of the method")


@dataclass
class BitFitConfig(FTConfig):
    name: str = hp("bitfit", "config name of the method")
    families = ("gpt2", "bert", "roberta")


def apply_ft(model: nn.Module, cfg: FTConfig) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def apply_top2(model: nn.Module, cfg: FTTop2Config) -> nn.Module:
    for block in targets.blocks(model)[-cfg.top_layers :]:
        block.requires_grad_(True)
    norm = targets.final_norm(model)
    if norm is not None:
        norm.requires_grad_(True)
    return model


class SplitQKVConv1D(nn.Module):
    """GPT-2's c_attn with its (d, 3d) weight held as three (d, d) parameters; same forward."""

    def __init__(self, conv: nn.Module, trainable: tuple[str, ...]):
        super().__init__()
        w = conv.weight.detach()
        d = w.shape[1] // 3
        for i, n in enumerate("qkv"):
            setattr(self, f"{n}_weight", nn.Parameter(w[:, i * d : (i + 1) * d].clone(), requires_grad=n in trainable))
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.nf = w.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.cat([self.q_weight, self.k_weight, self.v_weight], dim=1)
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), w)
        return y.view(*x.shape[:-1], self.nf)

    def to_conv1d(self) -> nn.Module:
        conv = Conv1D(self.nf, self.q_weight.shape[0])
        conv = conv.to(device=self.bias.device, dtype=self.bias.dtype)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([self.q_weight, self.k_weight, self.v_weight], dim=1))
            conv.bias.copy_(self.bias)
        return conv


def apply_qv(model: nn.Module, cfg: FTQVConfig) -> nn.Module:
    for layer in range(targets.num_layers(model)):
        projs = targets.projections(model, layer)
        q = projs["q"]
        if q.fused:
            setattr(q.parent, q.attr, SplitQKVConv1D(q.module, ("q", "v")))
        else:
            for n in ("q", "v"):
                projs[n].module.weight.requires_grad_(True)
    return model


def merge_qv(model: nn.Module) -> nn.Module:
    for name, module in list(model.named_modules()):
        if isinstance(module, SplitQKVConv1D):
            targets.set_module(model, name, module.to_conv1d())
    return model


def merge_noop(model: nn.Module) -> nn.Module:
    """ft / ft_top2 / bitfit change the base weights in place: the model is already plain."""
    return model


def apply_bitfit(model: nn.Module, cfg: BitFitConfig) -> nn.Module:
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] == "bias":
            p.requires_grad_(True)
    return model


def describe_qv(sd: Mapping[str, torch.Tensor]) -> str | None:
    """ft_qv on GPT-2 trains the q and v column blocks of c_attn as ``q_weight``/``v_weight``; on
    BERT/RoBERTa/LLaMA it trains plain ``weight`` tensors that name no method (None)."""
    return "ft_qv on GPT-2" if any(k.endswith("q_weight") for k in sd) else None


def describe_bitfit(sd: Mapping[str, torch.Tensor]) -> str | None:
    """Biases only, besides the task head."""
    return f"bitfit ({len(sd)} bias tensors)" if all(k.endswith("bias") for k in method_keys(sd)) else None


SPECS = [
    MethodSpec("ft", FTConfig, apply_ft, merge_noop, description="full fine-tuning", label="FT"),
    MethodSpec("ft_top2", FTTop2Config, apply_top2, merge_noop, description="last two blocks + final norm",
               label="FT^Top2", tex_label=r"FT$^{\mathrm{Top2}}$"),
    MethodSpec("ft_qv", FTQVConfig, apply_qv, merge_qv, description="only Wq and Wv (no biases)", describe=describe_qv,
               label="FT (q,v)"),
    MethodSpec("bitfit", BitFitConfig, apply_bitfit, merge_noop, families=("gpt2", "bert", "roberta"), description="biases only",
               describe=describe_bitfit, label="BitFit"),
]
