"""Prefix-layer tuning ("PreLayer" in the LoRA paper): trainable activations at every layer for
``num_virtual_tokens`` prefix positions.

Implemented as per-layer trainable key/value prefixes handed to the base model through its
attention cache (``past_key_values``): every layer's self-attention attends to the prefix keys and
values before the real tokens. This is exactly PEFT's prefix tuning with
``prefix_projection=False`` (one tensor of shape ``(num_virtual_tokens, layers, 2, kv_heads,
head_dim)``; ``tests/test_methods_prefix_prompt.py`` checks logits equality with PEFT: live for GPT-2/LLaMA, and
for BERT/RoBERTa against PEFT outputs stored under pinned versions in ``tests/golden/peft_prefix``,
because PEFT 0.21.2's signature check looks for ``past_key_values``, which transformers 5.24 renamed
``cache`` on those models; the base models still accept ``past_key_values`` (a deprecated alias
until transformers 5.40, hence ``transformers<5.40`` in pyproject.toml)).

Semantics shared with PEFT, which callers should know:
* the real tokens' positions continue after the prefix (GPT-2/LLaMA derive positions from the cache
  length; an explicit ``position_ids`` for the real tokens is shifted by ``num_virtual_tokens``;
  BERT/RoBERTa offset by the cache length too);
* ``attention_mask`` covers the real tokens only; the wrapper prepends ones for the prefix;
* the returned ``past_key_values`` already holds the prefix, so incremental decoding passes it back
  unchanged and the wrapper adds nothing on later calls.

Note on parameter counts: the LoRA paper's PreLayer counts ``L * d_model * (l_p + l_i)`` (one
activation vector per layer and position); the key/value form learns a key and a value per layer
and position, ``2 * L * kv_heads * head_dim * num_virtual_tokens`` (= ``2 * L * d_model * n`` for
GPT-2/BERT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from transformers import DynamicCache

from lodabench.errors import ConfigError
from lodabench.methods import targets
from lodabench.methods.base import MethodSpec

PREFIX_INITS = ("vocab_kv", "normal")


def is_sequence_classifier(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def kv_shape(model: nn.Module) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of the model's self-attention cache."""
    c = model.config
    heads = int(c.num_attention_heads)
    kv_heads = int(getattr(c, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
    return int(c.num_hidden_layers), kv_heads, head_dim


def extend_mask(attention_mask: torch.Tensor | None, n_virtual: int) -> torch.Tensor | None:
    """Prepend ``n_virtual`` ones (the virtual tokens are always visible)."""
    if attention_mask is None:
        return None
    ones = attention_mask.new_ones(attention_mask.shape[0], n_virtual)
    return torch.cat([ones, attention_mask], dim=1)


def check_no_gradient_checkpointing(model: nn.Module, method: str) -> None:
    # HF drops the cache under gradient checkpointing in training, which would silently drop the prefix.
    if any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        raise ConfigError(
            f"method.name={method} does not work with gradient checkpointing enabled on the model; "
            "disable gradient checkpointing (trainer.gradient_checkpointing=false)"
        )


@dataclass
class PrefixConfig:
    name: str = "prefix"
    num_virtual_tokens: int = field(default=10, metadata={"help": "number of prefix positions l_p (per layer key/value pairs)"})
    init: str = field(
        default="vocab_kv",
        metadata={"help": "vocab_kv: keys/values the frozen model computes for random tokens among the first vocab_top_k ids "
                  "(Li & Liang 2021 Sec. 7.2: init from real-word activations); normal: N(0, init_std^2)"},
    )
    init_std: float = field(default=0.02, metadata={"help": "std of the normal init"})
    vocab_top_k: int = field(default=5000, metadata={"help": "vocab_kv samples token ids from [0, vocab_top_k)"})
    train_head: bool = field(default=True, metadata={"help": "a classification head (classifier/score) trains too (registry)"})

    def validate(self, model: nn.Module | None = None) -> None:
        if not isinstance(self.num_virtual_tokens, int) or self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens={self.num_virtual_tokens!r}: must be a positive integer (e.g. 10)")
        if self.init not in PREFIX_INITS:
            raise ConfigError(f"method.init={self.init!r} for prefix: choose one of {list(PREFIX_INITS)}")
        if not self.init_std > 0:
            raise ConfigError(f"method.init_std={self.init_std!r}: must be > 0")
        if not 1 <= self.vocab_top_k:
            raise ConfigError(f"method.vocab_top_k={self.vocab_top_k!r}: must be >= 1 (e.g. 5000)")
        if model is None:
            return
        targets.family(model)  # ConfigError for an unsupported model type
        n_pos = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if n_pos is not None and self.num_virtual_tokens >= n_pos:
            raise ConfigError(
                f"method.num_virtual_tokens={self.num_virtual_tokens} leaves no positions for real tokens "
                f"(the model has {n_pos} positions); use fewer virtual tokens"
            )


class PrefixTuningModel(nn.Module):
    """Wraps a frozen HF model; ``prefix`` (n, layers, 2, kv_heads, head_dim) is the only trainable tensor."""

    def __init__(self, base_model: nn.Module, cfg: PrefixConfig):
        super().__init__()
        self.base_model = base_model
        self.config = base_model.config
        self.method_config = cfg
        self.num_virtual_tokens = cfg.num_virtual_tokens
        layers, kv_heads, head_dim = kv_shape(base_model)
        like = next(base_model.parameters())
        self.prefix = nn.Parameter(
            torch.empty(cfg.num_virtual_tokens, layers, 2, kv_heads, head_dim, device=like.device, dtype=torch.float32)
        )
        with torch.no_grad():
            if cfg.init == "normal":
                self.prefix.normal_(0.0, cfg.init_std)
            else:
                self.prefix.copy_(self._kv_of_tokens(cfg))

    @torch.no_grad()
    def _kv_of_tokens(self, cfg: PrefixConfig) -> torch.Tensor:
        """The frozen model's own keys/values for ``n`` random tokens (a realistic starting point)."""
        top = min(cfg.vocab_top_k, int(self.config.vocab_size))
        ids = torch.randint(0, top, (1, cfg.num_virtual_tokens), device=self.prefix.device)
        cache = DynamicCache()
        was_training = self.base_model.training
        self.base_model.eval()
        self.base_model(input_ids=ids, past_key_values=cache, use_cache=True)
        self.base_model.train(was_training)
        # layer.keys: (1, kv_heads, n, head_dim) -> (n, kv_heads, head_dim)
        per_layer = [torch.stack([layer.keys[0], layer.values[0]]).permute(2, 0, 1, 3) for layer in cache.layers]
        return torch.stack(per_layer, dim=1).float()

    def prefix_cache(self, batch_size: int) -> DynamicCache:
        """A fresh cache holding the prefix for every layer, expanded over the batch."""
        dtype = next(self.base_model.parameters()).dtype
        prefix = self.prefix.to(dtype)
        layers = []
        for i in range(prefix.shape[1]):
            # (n, kv_heads, head_dim) -> (batch, kv_heads, n, head_dim)
            k = prefix[:, i, 0].transpose(0, 1).unsqueeze(0).expand(batch_size, -1, -1, -1)
            v = prefix[:, i, 1].transpose(0, 1).unsqueeze(0).expand(batch_size, -1, -1, -1)
            layers.append((k, v))
        return DynamicCache(layers)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, labels=None, **kwargs):
        if input_ids is None:
            raise ConfigError("prefix tuning: the wrapper needs input_ids (inputs_embeds is not supported)")
        first = past_key_values is None or past_key_values.get_seq_length() == 0
        if first:
            past_key_values = self.prefix_cache(input_ids.shape[0])
        if position_ids is not None:
            position_ids = position_ids + self.num_virtual_tokens
        return self.base_model(
            input_ids=input_ids,
            attention_mask=extend_mask(attention_mask, self.num_virtual_tokens),
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            labels=labels,
            **kwargs,
        )


def apply_prefix(model: nn.Module, cfg: PrefixConfig) -> nn.Module:
    cfg.validate(model)
    check_no_gradient_checkpointing(model, "prefix")
    for p in model.parameters():
        p.requires_grad_(False)
    return PrefixTuningModel(model, cfg)


SPECS = [
    MethodSpec(
        name="prefix",
        config_cls=PrefixConfig,
        apply=apply_prefix,
        merge=None,
        description="prefix-layer tuning: trainable key/value prefixes at every layer (PEFT prefix tuning, no projection)",
    )
]
