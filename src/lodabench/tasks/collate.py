"""Token ids, loss masks and padded batches, built the way LoRA's GPT-2 code builds them.

Causal LM (E2E, DART), from microsoft/LoRA ``examples/NLG``:

* ``src/gpt2_encode.py --add_bos --add_eos``:
  ``context = enc.encode(context) + [50256]`` (the "bos" is appended AFTER the source, so it is a
  separator) and ``completion = enc.encode(' ' + completion) + [50256]`` (note the leading space).
* ``src/data_utils.py`` ``FT_Dataset.__getitem__``: ``input = context + completion`` cut by
  ``padding_tokens(..., direct=1)``, which keeps the FIRST ``max_seq_length`` tokens: an
  over-long example loses the END of its target (then the source), never the source first.
  The loss mask is 0 over the context (source + separator) and 1 over the completion
  (``[0.0] * (len(conditions) - 1) + [1.0] * (input_len - len(conditions))`` on the shifted
  targets), i.e. the loss is on the reference tokens and the final EOS only; the separator is
  never a target.
* ``encode_pair`` returns that sequence with ``loss_mask`` aligned to ``input_ids`` (1 where the
  token is a completion token, i.e. predicted from the previous position); ``labels`` in the
  collated batch are ``input_ids`` with -100 outside the mask, the HF convention (the model
  shifts them).
* Decoding prompts (``encode_source``): ``source tokens + [separator]``; LoRA's query is cut by
  ``padding_tokens(..., direct=-1, max_context_length=seq_len - eval_len)``, which keeps the
  LAST tokens, so ``encode_source(max_length=...)`` truncates from the left.

GPT-2 has no pad token; LoRA pads with id 0. Pad ids never matter here: the attention mask and
the -100 labels exclude them, so ``CausalLMCollator(pad_token_id=0)`` is the default.

Classifiers (GLUE): ``encode_text_pair`` tokenizes ``(text_a, text_b)`` with the tokenizer's own
special tokens and ``truncation=True`` (HF "longest_first": tokens are removed from the longer
of the two texts until the pair fits ``max_length``); ``ClassificationCollator`` pads each batch
to its longest row (dynamic padding; equivalent under the attention mask to padding to
``max_length`` as HF's run_glue does, and faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lodabench.errors import ConfigError


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    """Plain BPE ids of ``text``, as LoRA's ``enc.encode`` gives: no special tokens added, and a
    literal ``<|endoftext|>`` in the text is BPE-encoded as characters, not mapped to id 50256
    (``split_special_tokens=True``), so data text can never forge a separator/EOS."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def _eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no eos_token_id; the "
                          "generation tasks end every target with EOS (GPT-2: 50256)")
    return int(eos)


def encode_source(tokenizer: Any, source: str, sep_token_id: int | None = None,
                  max_length: int | None = None) -> list[int]:
    """Decoding prompt: ``tokens(source) + [sep]`` (sep defaults to EOS), keeping the last
    ``max_length`` tokens when given (LoRA: ``seq_len - eval_len``)."""
    sep = _eos_id(tokenizer) if sep_token_id is None else int(sep_token_id)
    ids = _token_ids(tokenizer, source) + [sep]
    if max_length is not None:
        if max_length < 1:
            raise ConfigError(f"prompt max_length must be >= 1, got {max_length}")
        ids = ids[-max_length:]
    return ids


def encode_pair(tokenizer: Any, source: str, target: str, max_length: int,
                sep_token_id: int | None = None) -> dict[str, list[int]]:
    """``tokens(source) + [sep] + tokens(' ' + target) + [eos]``, cut to ``max_length``.

    Returns ``{"input_ids": [...], "loss_mask": [...]}`` (same length; 1 on the target tokens and
    the final EOS). If the source alone fills ``max_length`` the mask is all zeros: the example
    carries no loss, as in LoRA.
    """
    if max_length < 2:
        raise ConfigError(f"max_length must be >= 2, got {max_length}")
    eos = _eos_id(tokenizer)
    sep = eos if sep_token_id is None else int(sep_token_id)
    context = _token_ids(tokenizer, source) + [sep]
    completion = _token_ids(tokenizer, " " + target) + [eos]
    input_ids = (context + completion)[:max_length]
    loss_mask = ([0] * len(context) + [1] * len(completion))[:max_length]
    return {"input_ids": input_ids, "loss_mask": loss_mask}


class CausalLMCollator:
    """Right-pads encoded pairs into ``input_ids``, ``attention_mask``, ``loss_mask``, ``labels``.

    ``labels`` = ``input_ids`` where ``loss_mask`` is 1, else -100 (HF convention; the model or
    ``lodabench.tasks.losses`` shifts by one). ``loss_mask`` is float (multiply-and-sum friendly).
    """

    def __init__(self, pad_token_id: int = 0, label_pad_id: int = -100) -> None:
        self.pad_token_id = pad_token_id
        self.label_pad_id = label_pad_id

    def __call__(self, batch: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        if not batch:
            raise ValueError("empty batch")
        width = max(len(ex["input_ids"]) for ex in batch)
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        loss_mask = torch.zeros((n, width), dtype=torch.float)
        for i, ex in enumerate(batch):
            length = len(ex["input_ids"])
            if len(ex["loss_mask"]) != length:
                raise ValueError(f"example {i}: input_ids and loss_mask lengths differ "
                                 f"({length} vs {len(ex['loss_mask'])})")
            input_ids[i, :length] = torch.tensor(ex["input_ids"], dtype=torch.long)
            attention_mask[i, :length] = 1
            loss_mask[i, :length] = torch.tensor(ex["loss_mask"], dtype=torch.float)
        labels = torch.where(loss_mask.bool(), input_ids, torch.full_like(input_ids, self.label_pad_id))
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "loss_mask": loss_mask, "labels": labels}


def pad_prompts(prompts: Sequence[list[int]], pad_token_id: int = 0,
                side: str = "left") -> dict[str, torch.Tensor]:
    """Batch decoding prompts; left padding (default) keeps every prompt's end at the last column,
    which batched generation needs. Returns ``input_ids`` and ``attention_mask``."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        cols = slice(width - len(p), width) if side == "left" else slice(0, len(p))
        input_ids[i, cols] = torch.tensor(p, dtype=torch.long)
        attention_mask[i, cols] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def encode_text_pair(tokenizer: Any, text_a: str, text_b: str | None,
                     max_length: int) -> dict[str, list[int]]:
    """One classifier input: the tokenizer's pair template, truncated to ``max_length``."""
    enc = tokenizer(text_a, text_b, truncation=True, max_length=max_length)
    return {"input_ids": list(enc["input_ids"]), "attention_mask": list(enc["attention_mask"])}


class ClassificationCollator:
    """Tokenizes GLUE rows and pads each batch to its longest row (``padding='longest'``).

    Labels are ``long`` class ids, or ``float`` for a regression task (STS-B).
    """

    def __init__(self, tokenizer: Any, max_length: int, is_regression: bool = False) -> None:
        if getattr(tokenizer, "pad_token_id", None) is None:
            raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no pad token; set "
                              "tokenizer.pad_token (e.g. to its eos token) before batching")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.is_regression = is_regression

    def __call__(self, rows: Sequence[Any]) -> dict[str, torch.Tensor]:
        text_a = [r[0] for r in rows]
        text_b = [r[1] for r in rows]
        if any(b is None for b in text_b) and not all(b is None for b in text_b):
            raise ValueError("a batch mixes single-text and text-pair rows")
        enc = self.tokenizer(text_a, None if text_b[0] is None else text_b, truncation=True,
                             max_length=self.max_length, padding="longest", return_tensors="pt")
        dtype = torch.float if self.is_regression else torch.long
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": torch.tensor([r[2] for r in rows], dtype=dtype)}

    def lengths(self, rows: Sequence[Any]) -> list[int]:
        """Token count of each row as ``__call__`` encodes it (truncated, unpadded)."""
        out = []
        for r in rows:
            enc = self.tokenizer(r[0], r[1], truncation=True, max_length=self.max_length)
            out.append(len(enc["input_ids"]))
        return out
