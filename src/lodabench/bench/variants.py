"""Benchmark models: random-init GPT-2 medium / RoBERTa-base from config, and one copy per method
that SHARES the frozen base weights (so a dozen GPT-2 medium variants fit in memory at once,
which round-robin timing needs).

``shared_copy(base)`` deep-copies the module tree but lets every new Parameter/buffer point at
the base tensor's storage. Each copy has its own Parameter objects (so ``requires_grad`` set by
one method does not leak into another), but an in-place write would leak. Two kinds of in-place
writes exist, and both are made private:

* before a method is applied, the q/k/v projection modules get their own weight copies
  (S-LoDA prunes W_proj in place; ``merge_method`` writes the update into W0);
* after it is applied, every trainable parameter that still aliases the base is cloned
  (Houlsby adapters train the blocks' LayerNorms, heads train, RoBERTa ft_qv trains Wq/Wv).

Method hyperparameters are each method's config defaults (``method=<name>``) (the papers'
settings), with the overrides the variant names: the benchmark times exactly what a run trains.
``build_variant`` is the one variant builder: the bench suites and ``analysis cost`` both use it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from lodabench.errors import ConfigError
from lodabench.methods import apply_method, merge_method, targets
from lodabench.models.pretrained import load_model, read_model_conf

# Full-size configs (random weights): the shapes of the LoDA/LoRA papers' models.
MODELS: dict[str, dict[str, Any]] = {
    "gpt2-medium": {
        "source": "config", "pretrained": "gpt2", "kind": "causal_lm",
        "config_overrides": {"n_embd": 1024, "n_layer": 24, "n_head": 16, "n_positions": 1024,
                             "attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
    },
    "gpt2-small": {
        "source": "config", "pretrained": "gpt2", "kind": "causal_lm",
        "config_overrides": {"attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
    },
    "roberta-base": {
        "source": "config", "pretrained": "roberta", "kind": "sequence_classification",
        "config_overrides": {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
                             "num_attention_heads": 12, "intermediate_size": 3072,
                             "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1},
    },
}


# --quick: the test-suite models, read from their own configs so the shapes never drift apart.
QUICK_MODELS = ("tiny-gpt2", "tiny-roberta")


def bench_model_conf(model_name: str) -> dict[str, Any]:
    """The model node of a bench model: MODELS (from config, no weights), or a test-suite model's own conf."""
    if model_name in QUICK_MODELS:
        return read_model_conf(model_name)
    if model_name not in MODELS:
        raise ConfigError(f"bench model {model_name!r} is not one of {sorted([*MODELS, *QUICK_MODELS])} "
                          "(lodabench/bench/variants.py)")
    return MODELS[model_name]


def build_base(model_name: str, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    cfg = bench_model_conf(model_name)
    torch.manual_seed(seed)
    extra = {"num_labels": 2} if cfg["kind"] == "sequence_classification" else {}
    model = load_model(cfg, **extra)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def method_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    """The method config a run composes by default (``params.method_defaults``: the method's config
    dataclass, built-in or plugin) with ``overrides``."""
    from lodabench.models.params import method_defaults

    return {**{k: v for k, v in method_defaults(name).items() if v is not None}, **overrides}


def shared_copy(base: nn.Module) -> nn.Module:
    """A deep copy whose parameters and buffers alias the base's storage (module doc)."""
    memo: dict[int, Any] = {}
    for p in base.parameters():
        memo[id(p)] = nn.Parameter(p.data, requires_grad=p.requires_grad)
    for b in base.buffers():
        memo[id(b)] = b
    return copy.deepcopy(base, memo)


def _storages(model: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}


def _privatise_projections(model: nn.Module) -> None:
    for layer in range(targets.num_layers(model)):
        for proj in targets.projections(model, layer).values():
            module = proj.module
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad))


def _privatise_trainable(model: nn.Module, base_storages: set[int]) -> None:
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and p.requires_grad and p.untyped_storage().data_ptr() in base_storages:
                module._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=True)


@dataclass
class Variant:
    """One thing to time: a label, the method config (None = base model, "peft" = PEFT LoRA)."""

    label: str
    method: str | None
    overrides: dict[str, Any] = field(default_factory=dict)
    merged: bool = False


def peft_lora(model: nn.Module, family: str, cfg: dict[str, Any]) -> nn.Module:
    """PEFT's LoRA with the same r/alpha/dropout. GPT-2: c_attn (q, k AND v: PEFT cannot adapt
    a column slice of the fused matrix); RoBERTa: query and value, as our LoRA."""
    from peft import LoraConfig, get_peft_model

    if family == "gpt2":
        pc = LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                        target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")
    else:
        pc = LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                        target_modules=["query", "value"], task_type="SEQ_CLS")
    return get_peft_model(model, pc)


def build_variant(base: nn.Module, v: Variant, device: str | torch.device = "cpu") -> nn.Module:
    """A model for ``v`` sharing ``base``'s frozen weights (module doc)."""
    model = shared_copy(base)
    base_storages = _storages(base)
    _privatise_projections(model)
    if v.method == "peft_lora":
        model = peft_lora(model, targets.family(base), method_cfg("lora", **v.overrides))
    elif v.method is not None:
        model = apply_method(model, method_cfg(v.method, **v.overrides))
        if v.merged:
            model = merge_method(model)
    _privatise_trainable(model, base_storages)
    return model.to(device)
