"""Where the methods attach: q/k/v projections, block sublayers and heads of each model family.

Every method is defined on the attention projections (LoRA/LoDA/CondLoRA/DoRA/ft_qv), on the
block sublayers (adapters) or on the transformer stack (ft_top2, prefix). The three families
store those pieces differently, so this module is the only place that knows the layouts:

==========  =======================================  ==========================================
family      q / k / v                                attention output / FFN output sublayer
==========  =======================================  ==========================================
gpt2        ``transformer.h[i].attn.c_attn``: ONE     ``attn.c_proj`` / ``mlp.c_proj`` (Conv1D)
            Conv1D, weight (d, 3d) stored (in, out);
            q = columns [0:d], k = [d:2d], v = [2d:3d]
bert,       ``encoder.layer[i].attention.self.``      ``attention.output.dense`` /
roberta     ``query/key/value`` (nn.Linear)           ``output.dense`` (nn.Linear, before the
                                                      residual + LayerNorm)
llama       ``model.layers[i].self_attn.q_proj/``     ``self_attn.o_proj`` / ``mlp.down_proj``
            ``k_proj/v_proj`` (nn.Linear; with GQA
            k/v have fewer outputs than q)
==========  =======================================  ==========================================

API (used by every method module, including adapter.py / prefix.py / prompt.py):

- ``family(model) -> str``: "gpt2" | "bert" | "roberta" | "llama" from ``model.config.model_type``
  (ConfigError for anything else).
- ``num_layers(model)``, ``hidden_size(model)``, ``blocks(model) -> list[nn.Module]``,
  ``body(model)`` (the transformer without its head: ``model.transformer`` / ``model.roberta`` /
  ``model.model``; the model itself when it is already the bare body).
- ``projections(model, layer) -> dict[str, Projection]`` for "q", "k", "v". A ``Projection``
  names the module that holds the weight (``parent``/``attr``/``module``), the column slice
  ``(start, end)`` of that module's output (the fused GPT-2 c_attn; a Linear's slice is its whole
  output), ``in_features``/``out_features`` of the slice, and ``weight()`` / ``bias()`` returning
  the slice in nn.Linear orientation (out, in) / (out,), whatever the storage.
- ``fused_projection(model, layer) -> FusedProjection``: the projection matrix
  W_proj = [Wq, Wk, Wv] used by R-LoDA/S-LoDA: ``weight()`` (in, d_q + d_k + d_v) "side by side",
  ``bias()``, and the three slices. For GPT-2 this is c_attn itself.
- ``attention_output(model, layer)`` / ``ffn_output(model, layer) -> Sublayer``: the module whose
  output is the sublayer's output before the residual add (where a Houlsby adapter goes).
  ``Sublayer(parent, attr, module, dim)``: replace it with ``setattr(parent, attr, new)``.
- ``final_norm(model) -> nn.Module | None``: GPT-2 ``ln_f``, LLaMA ``norm``, None for BERT/RoBERTa.
- ``head_modules(model) -> dict[str, nn.Module]``: task heads that stay trainable under PEFT
  methods (``classifier`` of BERT/RoBERTa, ``score`` of LLaMA/GPT-2 sequence classification).
  A language-model head (``lm_head``) is not listed: GPT-2's is tied to the input embedding.
- ``set_module(model, dotted_name, new)`` / ``get_module(model, dotted_name)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lodabench.errors import ConfigError

FAMILIES = ("gpt2", "bert", "roberta", "llama")
# LLaMA-layout decoders (same q_proj/k_proj/v_proj/o_proj/mlp.down_proj names).
_LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "smollm3"}
HEAD_NAMES = ("classifier", "score")


def is_head(param_name: str) -> bool:
    """A task head's parameter: trained by most methods, counted and described apart from the method's."""
    return any(part in HEAD_NAMES for part in param_name.split("."))


def family(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    if model_type in ("gpt2", "bert", "roberta"):
        return model_type
    if model_type in _LLAMA_LIKE:
        return "llama"
    raise ConfigError(
        f"model.config.model_type={model_type!r} is not a supported family; lodabench methods know "
        f"{', '.join(FAMILIES)} (LLaMA-layout types: {', '.join(sorted(_LLAMA_LIKE))}). "
        "Use one of those models or add the layout to lodabench/methods/targets.py."
    )


def body(model: nn.Module) -> nn.Module:
    fam = family(model)
    attr = {"gpt2": "transformer", "bert": "bert", "roberta": "roberta", "llama": "model"}[fam]
    inner = getattr(model, attr, None)
    # A bare GPT2Model/BertModel/LlamaModel is already the body.
    return inner if isinstance(inner, nn.Module) and inner is not model else model


def blocks(model: nn.Module) -> list[nn.Module]:
    fam, b = family(model), body(model)
    if fam == "gpt2":
        return list(b.h)
    if fam in ("bert", "roberta"):
        return list(b.encoder.layer)
    return list(b.layers)


def num_layers(model: nn.Module) -> int:
    return len(blocks(model))


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)


def _weight_of(module: nn.Module) -> torch.Tensor:
    """Dense weight in storage orientation; approximations (approx.py) expose ``dense_weight()``."""
    if hasattr(module, "dense_weight"):
        return module.dense_weight()
    return module.weight


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' GPT-2 Conv1D stores weight (in, out); approx.py's replacements keep the flag.
    return type(module).__name__ == "Conv1D" or getattr(module, "stores_in_out", False)


@dataclass
class Projection:
    """One of q/k/v: a column slice [start, end) of ``parent.<attr>``'s output."""

    name: str
    layer: int
    parent: nn.Module
    attr: str
    start: int
    end: int
    in_features: int

    @property
    def module(self) -> nn.Module:
        return getattr(self.parent, self.attr)

    @property
    def out_features(self) -> int:
        return self.end - self.start

    @property
    def fused(self) -> bool:
        """True when the slice is part of a larger output (GPT-2's c_attn)."""
        return _is_conv1d(_base_of(self.module))

    def weight(self) -> torch.Tensor:
        """W0 of this slice in nn.Linear orientation (out, in)."""
        base = _base_of(self.module)
        w = _weight_of(base)
        if _is_conv1d(base):
            return w[:, self.start : self.end].t()
        return w[self.start : self.end]

    def bias(self) -> torch.Tensor | None:
        b = getattr(_base_of(self.module), "bias", None)
        return None if b is None else b[self.start : self.end]


def _base_of(module: nn.Module) -> nn.Module:
    """Unwrap method wrappers (they hold the original module as ``base_layer``)."""
    while hasattr(module, "base_layer"):
        module = module.base_layer
    return module


def projections(model: nn.Module, layer: int) -> dict[str, Projection]:
    fam, block = family(model), blocks(model)[layer]
    d = hidden_size(model)
    if fam == "gpt2":
        attn = block.attn
        return {
            n: Projection(n, layer, attn, "c_attn", i * d, (i + 1) * d, d) for i, n in enumerate("qkv")
        }
    if fam in ("bert", "roberta"):
        parent, names = block.attention.self, ("query", "key", "value")
    else:
        parent, names = block.self_attn, ("q_proj", "k_proj", "v_proj")
    out = {}
    for n, attr in zip("qkv", names):
        base = _base_of(getattr(parent, attr))
        out_f, in_f = _linear_shape(base)
        out[n] = Projection(n, layer, parent, attr, 0, out_f, in_f)
    return out


def _linear_shape(module: nn.Module) -> tuple[int, int]:
    if hasattr(module, "out_features") and hasattr(module, "in_features"):
        return int(module.out_features), int(module.in_features)
    w = _weight_of(module)
    return int(w.shape[0]), int(w.shape[1])


@dataclass
class FusedProjection:
    """W_proj = [Wq, Wk, Wv] of one layer, as used by R-LoDA / S-LoDA (LoDA paper §3.3)."""

    layer: int
    parts: dict[str, Projection]

    @property
    def in_features(self) -> int:
        return self.parts["q"].in_features

    @property
    def out_features(self) -> int:
        return sum(p.out_features for p in self.parts.values())

    def weight(self) -> torch.Tensor:
        """(in, d_q + d_k + d_v): the three matrices side by side, input-major like Conv1D."""
        return torch.cat([self.parts[n].weight().t() for n in "qkv"], dim=1)

    def bias(self) -> torch.Tensor | None:
        bs = [self.parts[n].bias() for n in "qkv"]
        if all(b is None for b in bs):
            return None
        return torch.cat(
            [b if b is not None else self.parts[n].weight().new_zeros(self.parts[n].out_features) for n, b in zip("qkv", bs)]
        )


def fused_projection(model: nn.Module, layer: int) -> FusedProjection:
    return FusedProjection(layer, projections(model, layer))


@dataclass
class Sublayer:
    parent: nn.Module
    attr: str
    dim: int

    @property
    def module(self) -> nn.Module:
        return getattr(self.parent, self.attr)


def attention_output(model: nn.Module, layer: int) -> Sublayer:
    fam, block, d = family(model), blocks(model)[layer], hidden_size(model)
    if fam == "gpt2":
        return Sublayer(block.attn, "c_proj", d)
    if fam in ("bert", "roberta"):
        return Sublayer(block.attention.output, "dense", d)
    return Sublayer(block.self_attn, "o_proj", d)


def ffn_output(model: nn.Module, layer: int) -> Sublayer:
    fam, block, d = family(model), blocks(model)[layer], hidden_size(model)
    if fam == "gpt2":
        return Sublayer(block.mlp, "c_proj", d)
    if fam in ("bert", "roberta"):
        return Sublayer(block.output, "dense", d)
    return Sublayer(block.mlp, "down_proj", d)


def final_norm(model: nn.Module) -> nn.Module | None:
    fam, b = family(model), body(model)
    if fam == "gpt2":
        return b.ln_f
    if fam == "llama":
        return b.norm
    return None


def head_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: getattr(model, n) for n in HEAD_NAMES if isinstance(getattr(model, n, None), nn.Module)}


def get_module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name) if name else model


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(get_module(model, parent_name), attr, new)
