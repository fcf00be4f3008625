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

Reparameterisation (``projection=mlp``; Li & Liang 2021 Sec. 4.3, paraphrased because the paper's
text is not in ../shared/papers: directly optimising the prefix was unstable, so they train
``P[i,:] = MLP(P'[i,:])`` with a smaller ``P'`` and, once training is complete, drop the
reparameterisation and keep only ``P``): the prefix is
``MLP(P')`` with ``P'`` of shape ``(n, kv_width)`` and ``MLP = Linear(kv_width, projection_hidden) ->
tanh -> Linear(projection_hidden, L * 2 * kv_width)``, ``kv_width = kv_heads * head_dim`` (= d_model
without grouped-query attention, Li & Liang's ``n_embd``). This is their code's layout
(XiangLi1999/PrefixTuning gpt2/train_control.py: ``wte = nn.Embedding(preseqlen, n_embd)``,
``control_trans = Linear(n_embd, mid_dim) -> Tanh -> Linear(mid_dim, n_layer * 2 * n_embd)``,
``mid_dim=512``) and PEFT's ``PrefixEncoder`` with ``prefix_projection=True`` (``embedding``,
``transform``; PEFT also sizes the input by ``kv_heads * head_dim`` under GQA), which the tests
match numerically. P' and the MLP start from PyTorch's module defaults (``nn.Embedding`` N(0, 1),
``nn.Linear`` U(+-1/sqrt(fan_in))), as PEFT's; ``init`` must be ``random`` then. (Li & Liang build
the same modules inside a ``GPT2PreTrainedModel`` subclass; whether HF's weight init re-initialises
them there was not checked.) Differences: PEFT's
``encoder_hidden_size`` defaults to ``token_dim``, ours to Li & Liang's 512; Li & Liang's
``prefix_dropout`` (default 0.0) is not offered.

Merging (``merge``, the registry's ``merge_method``): after training the MLP output is computed
once and stored as the plain ``prefix`` tensor; the MLP and ``P'`` are deleted, so inference and
export need no MLP (exactly the logits of the unmerged model: the same operations run once).
``merge_prefix_projection`` keeps the method record (with ``projection="none"``, ``init="normal"``
and the default ``projection_hidden``: none of them matters for a stored tensor) so ``checkpoint.save_trainable`` writes a
checkpoint that loads into ``method=prefix method.projection=none method.init=normal``;
``merge_method`` drops the record, as for every merged method. Training checkpoints (trainer)
hold ``P'`` and the MLP, which resuming needs. In a run (``lodabench.run.spine``), once the reported
checkpoint is loaded, ``merge_after_training`` merges, writes ``<run_dir>/merged_prefix.safetensors``
and the run evaluates the merged model.

Note on parameter counts: the LoRA paper's PreLayer counts ``L * d_model * (l_p + l_i)`` (one
activation vector per layer and position); the key/value form learns a key and a value per layer
and position, ``2 * L * kv_heads * head_dim * num_virtual_tokens`` (= ``2 * L * d_model * n`` for
GPT-2/BERT). With ``projection=mlp`` the trainable count is far larger than the stored one (GPT-2
medium, n=10: 25,750,016 trained, 491,520 stored); ``lodabench.models.params`` prints both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
from transformers import DynamicCache

from lodabench.errors import ConfigError
from lodabench.methods import targets
from lodabench.methods.base import MethodSpec, and_model
from lodabench.config.ranges import DOMAIN, rng

PREFIX_INITS = ("vocab_kv", "normal", "random")
PREFIX_PROJECTIONS = ("none", "mlp")


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
    num_virtual_tokens: int = field(default=10, metadata={"help": "number of prefix positions l_p (per layer key/value pairs)",
                                                          DOMAIN: rng("[1, inf)")})
    init: str = field(
        default="vocab_kv",
        metadata={"help": "vocab_kv: keys/values the frozen model computes for random tokens among the first vocab_top_k ids "
                  "(Li & Liang 2021 Sec. 7.2: init from real-word activations); normal: N(0, init_std^2); "
                  "random: PyTorch module defaults of P' and the MLP (the only init of projection=mlp)"},
    )
    projection: str = field(
        default="none",
        metadata={"help": "none: the prefix is the trained tensor (PEFT prefix_projection=False); mlp: Li & Liang's "
                  "P = MLP(P') (Linear(kv_width, projection_hidden) -> tanh -> Linear(projection_hidden, 2*L*kv_width)), "
                  "merged into the plain prefix after training (merge_method)"},
    )
    projection_hidden: int = field(
        default=512,
        metadata={"help": "hidden width of projection=mlp (Li & Liang's mid_dim=512; PEFT encoder_hidden_size)",
                  DOMAIN: rng("[1, inf)")},
    )
    init_std: float = field(default=0.02, metadata={"help": "std of the normal init", DOMAIN: rng("(0, inf)")})
    vocab_top_k: int = field(default=5000, metadata={"help": "vocab_kv samples token ids from [0, vocab_top_k)",
                                                     DOMAIN: rng("[1, inf)")})
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
        self._validate_projection()
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        """The family, and room for real tokens after the virtual ones in the position table."""
        targets.family(model)  # ConfigError for an unsupported model type
        n_pos = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if n_pos is not None and self.num_virtual_tokens >= n_pos:
            raise ConfigError(
                f"method.num_virtual_tokens={self.num_virtual_tokens} leaves no positions for real tokens "
                f"(the model has {n_pos} positions); use fewer virtual tokens"
            )


    def _validate_projection(self) -> None:
        if self.projection not in PREFIX_PROJECTIONS:
            raise ConfigError(f"method.projection={self.projection!r} for prefix: choose one of {list(PREFIX_PROJECTIONS)}")
        if not isinstance(self.projection_hidden, int) or self.projection_hidden < 1:
            raise ConfigError(f"method.projection_hidden={self.projection_hidden!r}: must be a positive integer (e.g. 512)")
        if self.projection == "mlp" and self.init != "random":
            raise ConfigError(f"method.init={self.init!r} initialises a plain prefix; with method.projection=mlp P' and the "
                              "MLP are randomly initialised (Li & Liang's code, PEFT): set method.init=random")
        if self.projection == "none" and self.init == "random":
            raise ConfigError("method.init=random is the init of method.projection=mlp; for a plain prefix use "
                              "method.init=vocab_kv or method.init=normal")


class PrefixProjection(nn.Module):
    """Li & Liang's reparameterisation: ``P'`` (n, kv_width) -> MLP -> (n, layers, 2, kv_heads, head_dim)."""

    def __init__(self, n: int, layers: int, kv_heads: int, head_dim: int, hidden: int, device=None):
        super().__init__()
        width = kv_heads * head_dim
        self.shape = (n, layers, 2, kv_heads, head_dim)
        self.embedding = nn.Embedding(n, width, device=device)  # P'
        self.transform = nn.Sequential(nn.Linear(width, hidden, device=device), nn.Tanh(),
                                       nn.Linear(hidden, layers * 2 * width, device=device))

    def forward(self) -> torch.Tensor:
        # Output row i is laid out (layer, key/value, head, head_dim), as Li & Liang's and PEFT's view.
        return self.transform(self.embedding.weight).view(self.shape)


class PrefixTuningModel(nn.Module):
    """Wraps a frozen HF model. The trainable tensors: ``prefix`` (n, layers, 2, kv_heads, head_dim), or
    with ``projection=mlp`` the ``projection`` module (P' and the MLP) that computes it."""

    def __init__(self, base_model: nn.Module, cfg: PrefixConfig):
        super().__init__()
        self.base_model = base_model
        self.config = base_model.config
        self.method_config = cfg
        self.num_virtual_tokens = cfg.num_virtual_tokens
        layers, kv_heads, head_dim = kv_shape(base_model)
        like = next(base_model.parameters())
        if cfg.projection == "mlp":
            self.projection = PrefixProjection(cfg.num_virtual_tokens, layers, kv_heads, head_dim,
                                               cfg.projection_hidden, device=like.device)
            return
        self.prefix = nn.Parameter(
            torch.empty(cfg.num_virtual_tokens, layers, 2, kv_heads, head_dim, device=like.device, dtype=torch.float32)
        )
        with torch.no_grad():
            if cfg.init == "normal":
                self.prefix.normal_(0.0, cfg.init_std)
            else:
                self.prefix.copy_(self._kv_of_tokens(cfg))

    def prefix_tensor(self) -> torch.Tensor:
        """The prefix (n, layers, 2, kv_heads, head_dim): the stored tensor, or the MLP's output."""
        if hasattr(self, "projection"):
            return self.projection()
        return self.prefix

    @torch.no_grad()
    def _kv_of_tokens(self, cfg: PrefixConfig) -> torch.Tensor:
        """The frozen model's own keys/values for ``n`` random tokens (a realistic starting point)."""
        top = min(cfg.vocab_top_k, int(self.config.vocab_size))
        ids = torch.randint(0, top, (1, cfg.num_virtual_tokens), device=next(self.base_model.parameters()).device)
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
        prefix = self.prefix_tensor().to(dtype)
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


@torch.no_grad()
def merge_prefix_projection(model: PrefixTuningModel) -> PrefixTuningModel:
    """In place: store the MLP's output once as the plain ``prefix`` and delete P' and the MLP.

    The method record (``lodabench_method``), if any, becomes ``projection="none"`` so the merged
    model saves as, and loads into, ``method=prefix method.projection=none``. A model without a
    projection is returned unchanged.
    """
    if not isinstance(model, PrefixTuningModel):
        raise ConfigError(f"merge for method=prefix needs the prefix wrapper, got {type(model).__name__}")
    if not hasattr(model, "projection"):
        return model
    prefix = model.projection().detach().float().clone()
    del model.projection
    model.prefix = nn.Parameter(prefix)
    # A plain prefix: init and projection_hidden no longer matter, so the record takes the values a
    # fresh `method.projection=none method.init=normal` model has, and the checkpoint loads into it.
    plain = {"projection": "none", "init": "normal", "projection_hidden": PrefixConfig.projection_hidden}
    model.method_config = replace(model.method_config, **plain)
    from lodabench.methods import METHOD_ATTR

    record = getattr(model, METHOD_ATTR, None)
    if record is not None:
        record["config"] = {**record["config"], **plain}
    return model


MERGED_FILE = "merged_prefix.safetensors"


def merge_after_training(model: nn.Module, run_dir) -> nn.Module:
    """The run's hook after training: a prefix with the MLP projection is merged in place and
    saved as ``<run_dir>/merged_prefix.safetensors`` (loads into method.projection=none); any
    other model is returned unchanged."""
    if not isinstance(model, PrefixTuningModel) or not hasattr(model, "projection"):
        return model
    from pathlib import Path

    from lodabench.methods.checkpoint import save_trainable

    merged = merge_prefix_projection(model)
    save_trainable(merged, Path(run_dir) / MERGED_FILE)
    return merged


SPECS = [
    MethodSpec(
        name="prefix",
        config_cls=PrefixConfig,
        apply=apply_prefix,
        merge=merge_prefix_projection,
        after_training=merge_after_training,
        description="prefix-layer tuning: trainable key/value prefixes at every layer (PEFT prefix tuning; "
                    "projection=mlp: Li & Liang's MLP reparameterisation, merged after training)",
        label="PreLayer",  # LoDA Table 1's name for prefix-layer tuning
    )
]
