"""Bottleneck adapters: Adapter^H (Houlsby et al., 2019) and Adapter^L (Lin et al., 2020).

An adapter is ``h + up(act(down(h)))``: a down-projection to ``bottleneck`` units, a nonlinearity,
an up-projection back to ``d_model`` and a residual, initialised near the identity so training
starts from the base model's function.

Placement follows the LoRA paper (Hu et al., 2021, Sec. 5.1 "Baselines"):

* ``adapter_h`` -- "inserts adapter layers between the self-attention module (and the MLP module)
  and the subsequent residual connection": two adapters per block, each applied to a sublayer's
  output *before* the residual add. Houlsby et al. (Sec. 2.1) also train the layer-normalisation
  parameters, so ``train_layernorms`` (default true) unfreezes the block's own LayerNorms/RMSNorms;
  set it false to train adapter parameters only.
* ``adapter_l`` -- "the adapter layer applied only after the MLP module and after a LayerNorm":
  one adapter at the end of each block, on the block output ``H``, with its own trainable
  LayerNorm as in Lin et al. (Eq. 1): ``H + up(relu(down(LN(H))))``. The base model stays frozen.

Parameter count (LoRA paper, Sec. 5.1):
    |Theta| = L_adpt * (2 * d_model * r + r + d_model) + 2 * L_LN * d_model
(weights and biases of both projections; ``L_LN`` trainable LayerNorms with weight and bias).
For GPT-2 medium (24 blocks, d_model=1024) Adapter^L with its 24 LayerNorms gives
r=6 -> 368,784 (the paper's 0.37M) and r=224 -> 11,089,152 (11.09M); see method=adapter_l's defaults below.

Sublayers are located per family (hooks on the module whose output is the sublayer output, so the
base modules and their parameter names are unchanged):
    gpt2:  attn.resid_dropout (attention out),  mlp (FFN out),           block (block out)
    bert/roberta: attention.output.dropout,     output.dropout,          output (after its LayerNorm)
    llama: self_attn.o_proj,                    mlp,                      block
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from lodabench.errors import ConfigError
from lodabench.methods import targets
from lodabench.methods.base import MethodSpec, and_model
from lodabench.config.ranges import DOMAIN, rng
from lodabench.methods.targets import blocks, hidden_size

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
INITS = ("near_identity", "zero_up")


# --------------------------------------------------------------------------- sublayer lookup
# Family, blocks and width come from targets.py. The hook points below are our own: Houlsby's
# reference code (google-research/adapter-bert) applies the adapter after the sublayer's output
# dropout, which targets.attention_output()/ffn_output() (the projection before the dropout)
# do not give.
def sublayer_outputs(model: nn.Module, block: nn.Module) -> dict[str, nn.Module]:
    """Modules whose forward output is: the attention sublayer output (before the residual add),
    the FFN sublayer output (before the residual add), the block output."""
    family = targets.family(model)
    if family == "gpt2":
        return {"attn": block.attn.resid_dropout, "ffn": block.mlp, "block": block}
    if family in ("bert", "roberta"):
        return {"attn": block.attention.output.dropout, "ffn": block.output.dropout, "block": block.output}
    return {"attn": block.self_attn.o_proj, "ffn": block.mlp, "block": block}


def block_norms(model: nn.Module, block: nn.Module) -> list[nn.Module]:
    """The block's own normalisation layers (what Houlsby et al. also train)."""
    family = targets.family(model)
    if family == "gpt2":
        return [block.ln_1, block.ln_2]
    if family in ("bert", "roberta"):
        return [block.attention.output.LayerNorm, block.output.LayerNorm]
    return [block.input_layernorm, block.post_attention_layernorm]


# --------------------------------------------------------------------------- config
def _validate_common(cfg, name: str) -> None:
    if not isinstance(cfg.bottleneck, int) or cfg.bottleneck < 1:
        raise ConfigError(f"method.bottleneck={cfg.bottleneck!r} for {name}: must be a positive integer (e.g. 64)")
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(
            f"method.activation={cfg.activation!r} for {name}: choose one of {sorted(ACTIVATIONS)}"
        )
    if cfg.init not in INITS:
        raise ConfigError(f"method.init={cfg.init!r} for {name}: choose one of {list(INITS)}")
    if not (cfg.init_scale >= 0 and math.isfinite(cfg.init_scale)):
        raise ConfigError(f"method.init_scale={cfg.init_scale!r} for {name}: must be a finite number >= 0")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"method.dropout={cfg.dropout!r} for {name}: must be in [0, 1)")


class _AdapterChecks:
    """The adapters' two halves: values (``validate``), and the model's family (``check_model``)."""

    def validate(self, model: nn.Module | None = None) -> None:
        _validate_common(self, self.name)
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        targets.family(model)  # ConfigError for an unsupported model type


@dataclass
class AdapterHConfig(_AdapterChecks):
    name: str = "adapter_h"
    bottleneck: int = field(default=64, metadata={"help": "adapter bottleneck size r (down-projection width)",
                                                  DOMAIN: rng("[1, inf)")})
    activation: str = field(default="gelu", metadata={"help": "nonlinearity between the projections: relu|gelu|tanh (Houlsby's code: gelu)"})
    init: str = field(
        default="near_identity",
        metadata={"help": "near_identity: truncated normal(std=init_scale) weights, zero biases (Houlsby); zero_up: up-projection zero (exact identity)"},
    )
    init_scale: float = field(default=1e-3, metadata={"help": "std of the near_identity init (Houlsby: 1e-3)",
                                                       DOMAIN: rng("[0, inf)")})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's bottleneck activations",
                                                    DOMAIN: rng("[0, 1)")})
    train_layernorms: bool = field(
        default=True,
        metadata={"help": "also train the blocks' LayerNorms, as Houlsby et al. Sec. 2.1; false = adapter parameters only"},
    )

    train_head: bool = field(default=True, metadata={"help": "a classification head (classifier/score) trains too (registry)"})


@dataclass
class AdapterLConfig(_AdapterChecks):
    name: str = "adapter_l"
    bottleneck: int = field(default=6, metadata={"help": "adapter bottleneck size r; GPT-2 M: r=6 -> 0.37M, r=224 -> 11.09M (LoRA paper Table 3)",
                                                 DOMAIN: rng("[1, inf)")})
    activation: str = field(default="relu", metadata={"help": "nonlinearity between the projections: relu|gelu|tanh (Lin et al.: relu)"})
    init: str = field(
        default="near_identity",
        metadata={"help": "near_identity: truncated normal(std=init_scale) weights, zero biases; zero_up: up-projection zero (exact identity)"},
    )
    init_scale: float = field(default=1e-3, metadata={"help": "std of the near_identity init", DOMAIN: rng("[0, inf)")})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's bottleneck activations",
                                                    DOMAIN: rng("[0, 1)")})

    train_head: bool = field(default=True, metadata={"help": "a classification head (classifier/score) trains too (registry)"})


# --------------------------------------------------------------------------- modules
class Adapter(nn.Module):
    """``h + up(act(down(norm(h))))``; ``norm`` is a fresh LayerNorm for Adapter^L, identity for ^H.

    Registered as a child of its block; a forward hook on the sublayer module applies it, so the
    base modules and parameter names are untouched. The hook is a bound method, so ``deepcopy`` of
    the model rebinds it to the copied adapter.
    """

    def __init__(self, d_model: int, bottleneck: int, activation: str, init: str, init_scale: float,
                 dropout: float, layernorm: bool, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps) if layernorm else nn.Identity()
        self.down = nn.Linear(d_model, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, d_model)
        with torch.no_grad():
            for lin in (self.down, self.up):
                nn.init.trunc_normal_(lin.weight, std=init_scale, a=-2 * init_scale, b=2 * init_scale)
                lin.bias.zero_()
            if init == "zero_up":
                self.up.weight.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.drop(self.act(self.down(self.norm(h)))))

    def hook(self, module: nn.Module, inputs, output):
        if isinstance(output, tuple):
            return (self(output[0]),) + output[1:]
        return self(output)


def _freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _make(cfg, d_model: int, layernorm: bool, like: nn.Parameter) -> Adapter:
    adapter = Adapter(d_model, cfg.bottleneck, cfg.activation, cfg.init, cfg.init_scale, cfg.dropout, layernorm)
    return adapter.to(device=like.device, dtype=like.dtype)


def _check_fresh(model: nn.Module) -> None:
    if any(hasattr(b, "adapter_attn") or hasattr(b, "adapter_ffn") or hasattr(b, "adapter_out") for b in blocks(model)):
        raise ConfigError("the model already has adapters (apply adapter_h/adapter_l once, on a fresh model)")


def apply_adapter_h(model: nn.Module, cfg: AdapterHConfig) -> nn.Module:
    """Freeze the base; add adapters after the attention and FFN sublayers of every block."""
    cfg.validate(model)
    _check_fresh(model)
    _freeze(model)
    d = hidden_size(model)
    like = next(model.parameters())
    for block in blocks(model):
        subs = sublayer_outputs(model, block)
        for key, attr in (("attn", "adapter_attn"), ("ffn", "adapter_ffn")):
            adapter = _make(cfg, d, layernorm=False, like=like)
            block.add_module(attr, adapter)
            subs[key].register_forward_hook(adapter.hook)
        if cfg.train_layernorms:
            for norm in block_norms(model, block):
                for p in norm.parameters():
                    p.requires_grad_(True)
    return model


def apply_adapter_l(model: nn.Module, cfg: AdapterLConfig) -> nn.Module:
    """Freeze the base; add one adapter (with its own LayerNorm) on every block's output."""
    cfg.validate(model)
    _check_fresh(model)
    _freeze(model)
    d = hidden_size(model)
    like = next(model.parameters())
    for block in blocks(model):
        adapter = _make(cfg, d, layernorm=True, like=like)
        block.add_module("adapter_out", adapter)
        sublayer_outputs(model, block)["block"].register_forward_hook(adapter.hook)
    return model


def adapter_param_count(d_model: int, n_layers: int, bottleneck: int, adapters_per_layer: int,
                        layernorms_per_layer: int) -> int:
    """LoRA paper Sec. 5.1: L_adpt*(2*d*r + r + d) + 2*L_LN*d (projection weights+biases, LN weight+bias)."""
    n_adapters = n_layers * adapters_per_layer
    return n_adapters * (2 * d_model * bottleneck + bottleneck + d_model) + 2 * n_layers * layernorms_per_layer * d_model


SPECS = [
    MethodSpec(
        name="adapter_h",
        config_cls=AdapterHConfig,
        apply=apply_adapter_h,
        merge=None,
        description="Houlsby adapters after the attention and FFN sublayers of every block",
        label="Adapter^H",
        tex_label=r"Adapter$^{\mathrm{H}}$",
    ),
    MethodSpec(
        name="adapter_l",
        config_cls=AdapterLConfig,
        apply=apply_adapter_l,
        merge=None,
        description="Lin et al. adapter (own LayerNorm + bottleneck) on every block output",
        label="Adapter^L",
        tex_label=r"Adapter$^{\mathrm{L}}$",
    ),
]
