"""Prompt tuning (Lester et al., 2021): a soft prompt of ``num_virtual_tokens`` trainable
embeddings prepended to the input embeddings; the base model is frozen.

Inits (Lester et al. Sec. 3.2 / 7):
* ``random``: uniform in [-0.5, 0.5];
* ``sampled_vocab``: rows of the (frozen) embedding matrix for ids sampled without replacement
  from "the 5,000 most common tokens" (T5's SentencePiece vocabulary "is ordered by likelihood in
  pre-training corpus", ../shared/papers/peft_overview_slides.txt). The pool (``vocab_source``):
  - ``counts``: the ``vocab_top_k`` (5,000) most frequent ids of a committed count list. GPT-2's
    byte-level BPE ids are NOT frequency-ordered (the 256 byte symbols, then merges in merge
    order), and GPT-2's training-text counts are unpublished, so ``token_ranks_gpt2.json`` ranks the
    ids by their count in the GLUE training text with the GPT-2 tokenizer (made by
    ``scripts/make_token_ranks.py``, which says why that corpus; ``--check`` reproduces it). Only
    2,699 of those 5,000 ids lie in ``[0, 5000)``.
  - ``id_range``: ids ``[vocab_low, vocab_high)`` (default ``[0, 5000)``), the earlier
    approximation; right where the ids are count-ordered (RoBERTa's fairseq dictionary ids 4 on),
    not for BERT WordPiece (the first ~1000 ids are ``[unusedN]``: set ``vocab_low`` past them).
  - ``auto`` (default): ``counts`` where a list exists for the model's vocabulary (GPT-2's 50,257
    ids on a GPT-2 model), else ``id_range`` -- so BERT/RoBERTa/LLaMA runs keep their old init;
* ``class_label``: prompt position ``i`` gets the average embedding of the tokens of label word
  ``i`` (in the order given); positions beyond the number of labels fall back to sampled vocab.
  Label words need token ids: give ``label_token_ids`` directly, or ``label_words`` plus a local
  ``tokenizer`` directory (words are tokenized as written, without special tokens -- write
  " positive" with its leading space for GPT-2-style BPE).

Ensembling (Lester et al. Sec. 6 "prompt ensembling"), ``num_prompts = N > 1``: N prompts, each
initialised independently, in one batched pass -- the batch is repeated N times (copy ``k`` is
rows ``k*B:(k+1)*B`` of the internal batch) and copy ``k`` gets prompt ``k``. Combination:
* ``.loss`` (when ``labels`` are given) is the mean over prompts of each prompt's own loss, so each
  prompt gets exactly the gradient it would get if trained alone on the same batches;
* ``.logits`` are the ensemble prediction, by ``ensemble``:
  - ``majority_vote`` (default; Lester et al. Sec. 6 combine the five prompts' outputs by simple
    majority voting -- the paper's text is not in ../shared/papers, the slides there show the
    batched pass and Table 3 but not the rule): each prompt votes for its argmax class; returned as
    ``log((votes + p_mean) / (N + 1))`` with ``p_mean`` the prompts' mean probability, a proper
    distribution whose argmax is the class with most votes, ties going to the higher mean
    probability (our tie rule; the paper states none). Its cross-entropy is what a dev loss on
    ``.logits`` then measures. Classifiers only: for a causal LM the paper's vote is over decoded
    sequences, which the decoder does not do, so ``majority_vote`` with N > 1 on a causal LM is a
    ConfigError (use ``mean_prob``);
  - ``mean_prob``: ``log(mean_k softmax(logits_k))`` (average of the prompts' probabilities,
    returned as log-probabilities, so argmax/beam search use it directly; per token for a causal LM);
  - either way, a regression head (``num_labels == 1``) gets the plain mean of the prompts' outputs
    (a vote over real values is undefined);
* ``.per_prompt_logits`` has shape ``(N, B, ...)`` for analysis.
With a cache (incremental decoding) the returned cache holds all N copies; it is a DynamicCache
subclass whose ``reorder_cache``/``batch_select_indices``/``batch_repeat_interleave`` take indices
over the B real rows and apply them to every copy.

Semantics shared with PEFT (checked numerically in tests): real tokens take positions after the
prompt (the base model sees ``n + T`` positions); ``attention_mask`` covers the real tokens and
the wrapper prepends ones; ``token_type_ids`` get zeros for the prompt; with ``labels`` for a
causal LM the prompt positions get -100 and the loss is the base model's own loss on the full
sequence (identical to PEFT). ``.logits`` are returned for the real tokens only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import DynamicCache

from lodabench.errors import ConfigError
from lodabench.methods.base import MethodSpec, and_model
from lodabench.config.ranges import DOMAIN, rng
from lodabench.methods import targets
from lodabench.methods.prefix import check_no_gradient_checkpointing, extend_mask, is_sequence_classifier

PROMPT_INITS = ("random", "sampled_vocab", "class_label")
PROMPT_ENSEMBLES = ("majority_vote", "mean_prob")
VOCAB_SOURCES = ("auto", "counts", "id_range")


@dataclass
class PromptConfig:
    name: str = "prompt"
    num_virtual_tokens: int = field(default=20, metadata={"help": "soft prompt length (Lester et al.: 20 is a good default; 100 best)",
                                                          DOMAIN: rng("[1, inf)")})
    init: str = field(default="sampled_vocab", metadata={"help": "random | sampled_vocab | class_label (Lester et al. Sec. 3.2; class_label needs label words)"})
    vocab_source: str = field(default="auto", metadata={"help": "sampled_vocab pool: counts (the vocab_top_k most frequent ids of a committed count list: GPT-2) | id_range ([vocab_low, vocab_high)) | auto (counts where a list exists, else id_range)"})
    vocab_top_k: int = field(default=5000, metadata={"help": "vocab_source=counts: draw from the vocab_top_k most frequent ids (Lester et al.: 5,000)",
                                                     DOMAIN: rng("[1, inf)")})
    vocab_low: int = field(default=0, metadata={"help": "vocab_source=id_range: sampled_vocab draws ids from [vocab_low, vocab_high)",
                                                 DOMAIN: rng("[0, inf)")})
    vocab_high: int = field(default=5000, metadata={"help": "vocab_source=id_range: upper end (exclusive) of the id range",
                                                     DOMAIN: rng("[1, inf)")})
    label_words: list | None = field(default=None, metadata={"help": "class_label: label words in label order (tokenized with `tokenizer`)"})
    label_token_ids: list | None = field(default=None, metadata={"help": "class_label: token ids per label word (alternative to label_words + tokenizer)"})
    tokenizer: str | None = field(default=None, metadata={"help": "class_label: local tokenizer directory used to tokenize label_words"})
    num_prompts: int = field(default=1, metadata={"help": "prompt ensemble size N, evaluated in one batched pass",
                                                 DOMAIN: rng("[1, inf)")})
    ensemble: str = field(default="majority_vote", metadata={"help": "how N > 1 prompts combine: majority_vote (Lester et al. Sec. 6; classifiers) | mean_prob (average of the prompts' probabilities)"})
    train_head: bool = field(default=True, metadata={"help": "a classification head (classifier/score) trains too (registry)"})

    def validate(self, model: nn.Module | None = None) -> None:
        if not isinstance(self.num_virtual_tokens, int) or self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens={self.num_virtual_tokens!r}: must be a positive integer (e.g. 20)")
        if not isinstance(self.num_prompts, int) or self.num_prompts < 1:
            raise ConfigError(f"method.num_prompts={self.num_prompts!r}: must be a positive integer (1 = no ensemble)")
        if self.init not in PROMPT_INITS:
            raise ConfigError(f"method.init={self.init!r} for prompt: choose one of {list(PROMPT_INITS)}")
        if self.ensemble not in PROMPT_ENSEMBLES:
            raise ConfigError(f"method.ensemble={self.ensemble!r}: choose one of {list(PROMPT_ENSEMBLES)}")
        if self.vocab_source not in VOCAB_SOURCES:
            raise ConfigError(f"method.vocab_source={self.vocab_source!r}: choose one of {list(VOCAB_SOURCES)}")
        if not isinstance(self.vocab_top_k, int) or self.vocab_top_k < 1:
            raise ConfigError(f"method.vocab_top_k={self.vocab_top_k!r}: must be a positive integer (e.g. 5000)")
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        """The family, the ensemble rule, the label words and the token pool against the built model."""
        targets.family(model)  # ConfigError for an unsupported model type
        self._validate_ensemble(model)
        vocab = int(model.get_input_embeddings().num_embeddings)
        if self.init == "class_label":
            if self.label_token_ids is None and not (self.label_words and self.tokenizer):
                raise ConfigError(
                    "method.init=class_label needs method.label_token_ids, or method.label_words with "
                    "method.tokenizer (a local tokenizer directory)"
                )
            n_labels = len(self.label_token_ids if self.label_token_ids is not None else self.label_words)
            if n_labels > self.num_virtual_tokens:
                raise ConfigError(
                    f"method.init=class_label: {n_labels} label words but num_virtual_tokens="
                    f"{self.num_virtual_tokens}; use at least {n_labels} virtual tokens"
                )
            if self.label_token_ids is not None:
                for i, ids in enumerate(self.label_token_ids):
                    if not ids or any(not 0 <= int(t) < vocab for t in ids):
                        raise ConfigError(
                            f"method.label_token_ids[{i}]={ids!r}: needs at least one id, each in [0, {vocab})"
                        )
        if self.init != "random":
            self._validate_pool(model, vocab)

    def _validate_ensemble(self, model: nn.Module) -> None:
        if self.num_prompts > 1 and self.ensemble == "majority_vote" and not is_sequence_classifier(model):
            raise ConfigError(
                "method.ensemble=majority_vote with method.num_prompts>1 needs a classifier: on a causal LM "
                "Lester et al.'s vote is over decoded sequences, which the decoder does not do. Fix: "
                "method.ensemble=mean_prob (per-token probability averaging) or method.num_prompts=1"
            )

    def _validate_pool(self, model: nn.Module, vocab: int) -> None:
        source = resolved_vocab_source(self, model)
        if source == "counts":
            if not has_count_list(model):
                raise ConfigError(
                    f"method.vocab_source=counts: no committed token-count list for this model's vocabulary "
                    f"({targets.family(model)}, {vocab} ids; lodabench/methods/token_ranks_gpt2.json covers "
                    "GPT-2's 50,257). Fix: method.vocab_source=id_range with vocab_low/vocab_high"
                )
            from lodabench.methods import token_ranks_gpt2

            if self.vocab_top_k > len(token_ranks_gpt2.IDS):
                raise ConfigError(f"method.vocab_top_k={self.vocab_top_k}: the committed list ranks "
                                  f"{len(token_ranks_gpt2.IDS)} ids; use at most that many")
        elif not 0 <= self.vocab_low < self.vocab_high <= vocab:
            raise ConfigError(
                f"method.vocab_low={self.vocab_low}, method.vocab_high={self.vocab_high}: need "
                f"0 <= vocab_low < vocab_high <= vocabulary size {vocab}"
            )

    def resolved_label_token_ids(self) -> list[list[int]]:
        if self.label_token_ids is not None:
            return [[int(t) for t in ids] for ids in self.label_token_ids]
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.tokenizer, local_files_only=True)
        ids = [tok(w, add_special_tokens=False)["input_ids"] for w in self.label_words]
        for word, t in zip(self.label_words, ids):
            if not t:
                raise ConfigError(f"method.label_words: {word!r} tokenizes to no tokens with {self.tokenizer}")
        return ids


def has_count_list(model: nn.Module) -> bool:
    """A committed token-count list exists for the model's vocabulary (GPT-2's 50,257 BPE ids)."""
    from lodabench.methods import token_ranks_gpt2

    rows = int(model.get_input_embeddings().num_embeddings)
    return targets.family(model) == "gpt2" and rows == token_ranks_gpt2.VOCAB_SIZE


def resolved_vocab_source(cfg: PromptConfig, model: nn.Module) -> str:
    if cfg.vocab_source != "auto":
        return cfg.vocab_source
    return "counts" if has_count_list(model) else "id_range"


def vocab_pool(cfg: PromptConfig, model: nn.Module) -> torch.Tensor:
    """The ids sampled_vocab draws from: the vocab_top_k most frequent, or [vocab_low, vocab_high)."""
    if resolved_vocab_source(cfg, model) == "counts":
        from lodabench.methods import token_ranks_gpt2

        return torch.tensor(token_ranks_gpt2.IDS[:cfg.vocab_top_k], dtype=torch.long)
    return torch.arange(cfg.vocab_low, cfg.vocab_high)


def sample_vocab_rows(embedding: torch.Tensor, n: int, pool: torch.Tensor) -> torch.Tensor:
    """``n`` rows of ``embedding`` for ids drawn without replacement from ``pool`` (with replacement
    only if n exceeds it). For a range pool the draw equals the earlier ``randperm(span)[:n] + low``."""
    if n <= len(pool):
        ids = pool[torch.randperm(len(pool))[:n]]
    else:
        ids = pool[torch.randint(0, len(pool), (n,))]
    return embedding[ids.to(embedding.device)].detach().clone()


def init_prompt(cfg: PromptConfig, embedding: torch.Tensor, pool: torch.Tensor | None) -> torch.Tensor:
    """One prompt, shape (num_virtual_tokens, d), float32."""
    n, d = cfg.num_virtual_tokens, embedding.shape[1]
    if cfg.init == "random":
        return torch.empty(n, d).uniform_(-0.5, 0.5)
    prompt = sample_vocab_rows(embedding, n, pool).float().cpu()
    if cfg.init == "class_label":
        for i, ids in enumerate(cfg.resolved_label_token_ids()):
            prompt[i] = embedding[torch.tensor(ids, device=embedding.device)].float().mean(dim=0).cpu()
    return prompt


class EnsembleCache(DynamicCache):
    """A cache over N stacked copies of a batch; batch operations take indices over one copy."""

    def __init__(self, num_copies: int):
        super().__init__()
        self.num_copies = num_copies

    def _expand(self, indices: torch.Tensor) -> torch.Tensor:
        rows = self.layers[0].keys.shape[0] // self.num_copies
        indices = indices.to(self.layers[0].keys.device)
        return torch.cat([indices + k * rows for k in range(self.num_copies)])

    def reorder_cache(self, beam_idx: torch.LongTensor):
        super().reorder_cache(self._expand(beam_idx))

    def batch_select_indices(self, indices: torch.Tensor):
        super().batch_select_indices(self._expand(indices))

    def batch_repeat_interleave(self, repeats: int):
        rows = self.layers[0].keys.shape[0] // self.num_copies
        idx = torch.arange(rows, device=self.layers[0].keys.device).repeat_interleave(repeats)
        super().batch_select_indices(self._expand(idx))


class PromptTuningModel(nn.Module):
    """Wraps a frozen HF model; ``prompt`` of shape (num_prompts, n, d) is the only trainable tensor."""

    def __init__(self, base_model: nn.Module, cfg: PromptConfig):
        super().__init__()
        self.base_model = base_model
        self.config = base_model.config
        self.method_config = cfg
        self.num_virtual_tokens = cfg.num_virtual_tokens
        self.num_prompts = cfg.num_prompts
        self.is_classifier = is_sequence_classifier(base_model)
        self.ensemble = cfg.ensemble
        embedding = base_model.get_input_embeddings().weight
        pool = None if cfg.init == "random" else vocab_pool(cfg, base_model)
        prompts = torch.stack([init_prompt(cfg, embedding, pool) for _ in range(cfg.num_prompts)])
        self.prompt = nn.Parameter(prompts.to(embedding.device))

    def _repeat(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """Stack N copies of a batch tensor along dim 0 (copy k = rows k*B:(k+1)*B)."""
        if t is None or self.num_prompts == 1:
            return t
        return t.repeat(self.num_prompts, *([1] * (t.dim() - 1)))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, labels=None, token_type_ids=None, **kwargs):
        if input_ids is None:
            raise ConfigError("prompt tuning: the wrapper needs input_ids (inputs_embeds is not supported)")
        n, N = self.num_virtual_tokens, self.num_prompts
        batch = input_ids.shape[0]
        first = past_key_values is None or past_key_values.get_seq_length() == 0
        embeds = self._repeat(self.base_model.get_input_embeddings()(input_ids))
        attention_mask = self._repeat(extend_mask(attention_mask, n))
        if token_type_ids is not None and first:
            token_type_ids = torch.cat([token_type_ids.new_zeros(batch, n), token_type_ids], dim=1)
        token_type_ids = self._repeat(token_type_ids)
        if position_ids is not None:
            position_ids = position_ids + n
            if first:
                prompt_pos = torch.arange(n, device=position_ids.device).expand(position_ids.shape[0], n)
                position_ids = torch.cat([prompt_pos, position_ids], dim=1)
            position_ids = self._repeat(position_ids)
        if first:
            prompts = self.prompt.to(embeds.dtype).repeat_interleave(batch, dim=0)  # (N*B, n, d)
            embeds = torch.cat([prompts, embeds], dim=1)
            if N > 1 and use_cache:
                past_key_values = EnsembleCache(N)
            elif past_key_values is not None and past_key_values.get_seq_length() == 0:
                past_key_values = None  # an empty cache from the caller: let the model make its own
        base_labels = None
        if labels is not None:
            base_labels = labels
            if not self.is_classifier and first:
                base_labels = torch.cat([labels.new_full((batch, n), -100), labels], dim=1)
            base_labels = self._repeat(base_labels)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.base_model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            labels=base_labels,
            **extra,
            **kwargs,
        )
        logits = out.logits
        if not self.is_classifier and logits.shape[1] > input_ids.shape[1]:
            logits = logits[:, -input_ids.shape[1]:]  # drop the virtual positions
        if N > 1:
            per_prompt = logits.view(N, batch, *logits.shape[1:])
            out["per_prompt_logits"] = per_prompt
            if self.is_classifier and logits.shape[-1] == 1:
                logits = per_prompt.mean(dim=0)  # regression: no vote over real values
            elif self.ensemble == "majority_vote":
                logits = majority_vote_logits(per_prompt)
            else:
                logits = mean_prob_logits(per_prompt)
        out["logits"] = logits
        return out


def mean_prob_logits(per_prompt: torch.Tensor) -> torch.Tensor:
    """(N, ..., C) -> log of the prompts' mean probability."""
    return torch.logsumexp(per_prompt.float().log_softmax(dim=-1), dim=0) - math.log(per_prompt.shape[0])


def majority_vote_logits(per_prompt: torch.Tensor) -> torch.Tensor:
    """(N, ..., C) -> ``log((votes + p_mean) / (N + 1))``: argmax = the class most prompts predict,
    ties to the higher mean probability (softmax is positive, so one vote more, 1 + p_mean_A, always
    outweighs p_mean_B <= 1); a proper log-distribution (votes sum to N, p_mean to 1)."""
    n, classes = per_prompt.shape[0], per_prompt.shape[-1]
    votes = F.one_hot(per_prompt.argmax(dim=-1), classes).sum(dim=0).float()
    p_mean = per_prompt.float().softmax(dim=-1).mean(dim=0)
    return torch.log((votes + p_mean) / (n + 1))


def apply_prompt(model: nn.Module, cfg: PromptConfig) -> nn.Module:
    cfg.validate(model)
    check_no_gradient_checkpointing(model, "prompt")
    for p in model.parameters():
        p.requires_grad_(False)
    return PromptTuningModel(model, cfg)


SPECS = [
    MethodSpec(
        name="prompt",
        config_cls=PromptConfig,
        apply=apply_prompt,
        merge=None,
        description="prompt tuning: trainable soft prompt prepended to the input embeddings (optionally an ensemble)",
        label="PreEmbed",  # LoDA Table 1's name for prompt (embedding-prefix) tuning
    )
]
