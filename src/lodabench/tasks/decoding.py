"""Generation for E2E/DART: beam search as the LoRA paper's code ran it, and HF `generate` as oracle.

Reference: microsoft/LoRA ``examples/NLG/src/gpt2_beam.py`` (function ``beam`` and its helpers
``_postprocess_next_token_scores``, ``_calc_banned_ngram_tokens``, ``_enforce_repetition_penalty_``,
``_add_beam_candidate``, ``_reorder_cache``) and ``examples/NLG/src/gpt2_decode.py`` (text cut).
This module re-implements those semantics; it does not copy the code.

LoRA semantics ("lora" mode, the default), per step ``i`` = number of tokens generated so far:

1. Scores are the raw next-token logits of every live hypothesis, processed *before* the softmax:
   repetition penalty (CTRL: a logit < 0 is multiplied by the penalty, otherwise divided) over the
   set of tokens the hypothesis has *generated* (the prompt is not included); EOS logits set to
   -inf while ``i < min_new_tokens``; no-repeat n-gram: a token that would complete an n-gram
   already present in the *generated* tokens is set to -inf (fairseq rule, nothing is banned
   before n-1 tokens exist).
2. Log-probabilities are ``log(softmax(processed logits))`` -- banned tokens are removed and the
   rest renormalised.
3. Candidates are ``beam_score + logprob`` over beams x vocabulary; at step 0 only beam 0 is
   expanded (all beams hold the same prompt). The top ``num_beams`` candidates (sorted) become
   the new beams.
4. Finished hypotheses (``_add_beam_candidate``): a new beam whose last token is an EOS id is
   scored ``sum_logprob / len ** length_penalty`` (``len`` = generated tokens including the EOS;
   a plain power, not GNMT's ((5+len)/6)^lp); it replaces the item's best hypothesis only if
   strictly greater (earlier and lower-ranked candidates win ties); its beam score becomes -inf,
   so the slot is *lost for this step* and refilled at the next step's top-k from the live beams.
5. There is no early stop: the loop runs ``eval_len`` (= ``max_new_tokens``) steps and then all
   surviving beams are scored with ``len = max_new_tokens`` and compete with the finished ones.
   Here the loop stops early for an item only when no live beam can still win: log-probs are
   <= 0 so a live beam's future score is <= its current sum, and divided by the largest reachable
   ``len ** lp``; once the best finished score is >= that bound the result is fixed (the bound is
   valid in float arithmetic too: adding a non-positive float never increases a sum). Finished
   items are dropped from the batch, which only saves compute.
6. The README runs ``--eos_token_id 628`` on top of the argparse default ``[50256]``, so both
   ``<|endoftext|>`` and the ``"\\n\\n"`` token end a hypothesis (``extra_eos`` here).
7. Text (``gpt2_decode.py``): ``decode(tokens).split('<|endoftext|>')[0].split('\\n\\n')[0].strip()``.
   We do the same with the tokenizer's EOS text and ``stop_strings``, and also turn any remaining
   newline into a space: hyp files hold one hypothesis per line, where LoRA would have written a
   broken file.

Batching: LoRA right-pads queries and writes each new key at ``len_past`` with an attention
mask over real positions (its ``model.py``), i.e. every sequence is decoded as if alone. We
left-pad, pass ``attention_mask`` and ``position_ids`` (= position among real tokens), which
gives the same per-sequence computation with a standard HF cache; the prompt is run once per
item and the cache is expanded to ``num_beams`` rows with ``reorder_cache``.

HF ``generate`` (the vectorised beam search of transformers 5.x; checked on 5.23 here and 5.17)
differs from LoRA in exactly these
points (``hf_compatible: true`` switches our decoder to HF's rules; see ``decode_hf``):

* processors run on ``log_softmax(logits)`` (no renormalisation after a ban), and
  ``log_softmax`` instead of ``log(softmax)``;
* n-gram and repetition penalties see the whole row, prompt included (its left padding too for
  n-grams; HF leaves the padding out of the repetition penalty);
* HF keeps ``max(2, 1 + n_eos) * num_beams`` candidates and continues with the best
  ``num_beams`` *non-EOS* ones, so a finishing hypothesis does not cost a live beam;
* HF's default ``early_stopping=False`` is a heuristic that can stop before the best hypothesis
  is found; we pass ``early_stopping="never"``, whose bound (best running score /
  ``max_new_tokens ** lp`` for lp > 0) is exact for the top-1 hypothesis.

Both share: candidates only enter the finished pool if ranked within the top ``num_beams``;
the finished score is ``sum_logprob / generated_len ** lp`` with the EOS counted; at the last step
the top ``num_beams`` candidates are all scored with ``len = max_new_tokens``.

What is proved (tests/test_decoding.py), on a tiny random GPT-2 with batched, left-padded random
prompts and EOS ids the model does emit:

* ``hf_compatible: true`` returns exactly the tokens of ``model.generate(**hf_generate_kwargs)``
  for several settings (lp 0.9/0.8/1.0/-0.5, n-gram 0/2/3/4, repetition penalty 1.3,
  min_new_tokens); ties between float scores aside, which are resolved by ``torch.topk`` in both;
* ``lora`` mode returns exactly the tokens of a plain no-cache, one-prompt-at-a-time
  re-statement of gpt2_beam.py's loop, and is invariant to batching and to the early stop;
* the two rule sets coincide for ``num_beams=1`` without n-gram / repetition / min-length rules
  (both equal a naive argmax loop and ``generate``). In general (beam > 1) they coincide only when
  no EOS candidate ranks within the top ``num_beams`` before the last step and none of those rules
  fires, up to last-bit differences between ``log(softmax)`` and ``log_softmax``; otherwise
  outputs differ by design (a test checks they do on prompts with repeated bigrams).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from lodabench.errors import ConfigError
from lodabench.config.ranges import DOMAIN, rng

IMPLS = ("lora", "hf")


@dataclass
class DecodingConfig:
    """The ``decoding`` config group (``decoding=beam``'s node, conf/decoding/*.yaml): ``validate()``
    checks the values (preflight, once; ``decoding_config`` for values given in code)."""

    impl: str = "lora"  # lora: our beam search (main path) | hf: transformers `generate`
    # Each number's domain (lodabench.config.ranges): checked by preflight before anything loads.
    num_beams: int = field(default=10, metadata={DOMAIN: rng("[1, inf)")})
    length_penalty: float = field(default=0.9, metadata={DOMAIN: rng("(-inf, inf)")})  # finite; < 0 favours short
    no_repeat_ngram_size: int = field(default=4, metadata={DOMAIN: rng("[0, inf)")})  # 0: off
    repetition_penalty: float = field(default=1.0, metadata={DOMAIN: rng("(0, inf)")})  # 1.0: off
    max_new_tokens: int = field(default=64, metadata={DOMAIN: rng("[1, inf)")})
    min_new_tokens: int = field(default=0, metadata={DOMAIN: rng("[0, inf)")})
    batch_size: int = field(default=16, metadata={DOMAIN: rng("[1, inf)")})
    # Strings that must each be one token of the tokenizer; that token ends a hypothesis like
    # the tokenizer's EOS (LoRA README: --eos_token_id 628, GPT-2's "\n\n").
    extra_eos: tuple[str, ...] = ("\n\n",)
    # Decoded text is cut at the tokenizer's EOS text and at each of these (gpt2_decode.py).
    stop_strings: tuple[str, ...] = ("\n\n",)
    hf_compatible: bool = False  # our decoder with HF generate's rules (for the equivalence check)
    early_stop: bool = True  # exact early stop (see module doc); False runs all max_new_tokens
    progress: bool = True

    def validate(self) -> None:
        def bad(key: str, value: Any, want: str) -> ConfigError:
            return ConfigError(f"decoding.{key}={value!r} is invalid: {want} (conf/decoding/*.yaml)")

        if self.impl not in IMPLS:
            raise bad("impl", self.impl, f"use one of {list(IMPLS)}")
        for key in ("num_beams", "max_new_tokens", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise bad(key, getattr(self, key), "must be an integer >= 1")
        for key in ("no_repeat_ngram_size", "min_new_tokens"):
            if int(getattr(self, key)) < 0:
                raise bad(key, getattr(self, key), "must be an integer >= 0 (0 disables it)")
        if not self.repetition_penalty > 0:
            raise bad("repetition_penalty", self.repetition_penalty, "must be > 0 (1.0 disables it)")
        if not math.isfinite(self.length_penalty):
            raise bad("length_penalty", self.length_penalty, "must be a finite float")
        if self.min_new_tokens > self.max_new_tokens:
            raise bad("min_new_tokens", self.min_new_tokens, "must be <= decoding.max_new_tokens")


def decoding_config(cfg: Mapping[str, Any] | DecodingConfig | None = None, **overrides: Any) -> DecodingConfig:
    """The ``decoding`` group (a Hydra node, a dict or a DecodingConfig), plus overrides, typed by
    the one config path (lodabench.config.typed.build_config: unknown keys, types, domains) and
    checked by ``DecodingConfig.validate``. ``name`` (the group's own label) is ignored, and a
    null ``extra_eos``/``stop_strings`` means none. A DecodingConfig without overrides is returned
    as it is: the run's was validated by preflight."""
    from lodabench.config.typed import build_config, plain_values

    if isinstance(cfg, DecodingConfig) and not overrides:
        return cfg
    values = {str(k): v for k, v in plain_values(cfg or {}, "decoding").items() if k != "name"}
    values.update(overrides)
    for key in ("extra_eos", "stop_strings"):
        if key in values and values[key] is None:
            values[key] = ()
    conf = build_config(DecodingConfig, values, "decoding")
    conf.validate()
    return conf


# ----------------------------------------------------------------------------- tokens <-> text


def eos_token_ids(tokenizer: Any, cfg: DecodingConfig) -> list[int]:
    """The tokenizer's EOS id followed by the single-token ids of ``cfg.extra_eos``.

    A string that is not one token in this tokenizer (e.g. "\\n\\n" in a SentencePiece vocab) is
    skipped with a warning: the text is still cut at ``stop_strings``, only the search differs.
    """
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no eos_token_id; set one in the model's tokenizer config")
    ids = [int(tokenizer.eos_token_id)]
    for text in cfg.extra_eos:
        enc = tokenizer.encode(text, add_special_tokens=False)
        if len(enc) != 1:
            warnings.warn(
                f"decoding.extra_eos entry {text!r} is {len(enc)} tokens {enc} in this tokenizer, not one; "
                "it is not used as an EOS id (set decoding.extra_eos=[] to silence this)",
                stacklevel=2,
            )
        elif enc[0] not in ids:
            ids.append(int(enc[0]))
    return ids


def clean_output(text: str, cut_at: Sequence[str]) -> str:
    """gpt2_decode.py's cut: keep what precedes the first of each marker, strip, one line."""
    for marker in cut_at:
        if marker:
            text = text.split(marker)[0]
    return text.strip().replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def tokens_to_text(tokenizer: Any, tokens: Sequence[int], cfg: DecodingConfig) -> str:
    """Decode generated ids (special tokens kept, as LoRA's encoder does) and apply clean_output."""
    text = tokenizer.decode(list(tokens), skip_special_tokens=False, clean_up_tokenization_spaces=False)
    cut_at = [tokenizer.eos_token, *cfg.stop_strings] if tokenizer.eos_token else list(cfg.stop_strings)
    return clean_output(text, cut_at)


def _pad_id(tokenizer: Any, eos_ids: Sequence[int]) -> int:
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else int(eos_ids[0])


# ----------------------------------------------------------------------------- model plumbing


def _device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into (ids, attention_mask) so the last column is every prompt's end."""
    if any(len(p) == 0 for p in prompts):
        raise ConfigError("decode() got an empty source prompt; every source must have >= 1 token")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position of each token among the real tokens of its row (pads get 1, as HF generate)."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def _reorder(past: Any, rows: torch.Tensor) -> Any:
    """Select/duplicate cache rows (beam reorder, beam expansion, dropping finished items)."""
    if hasattr(past, "reorder_cache"):
        past.reorder_cache(rows)
        return past
    if isinstance(past, torch.Tensor):
        return past.index_select(0, rows.to(past.device))
    if isinstance(past, (tuple, list)):
        return type(past)(_reorder(p, rows) for p in past)
    raise TypeError(f"cannot reorder a past_key_values of type {type(past).__name__}")


def _forward(model: torch.nn.Module, ids, mask, pos, past, last_only: bool = False) -> tuple[torch.Tensor, Any]:
    """One model call; returns float32 logits of the last position and the cache.

    ``last_only`` asks for the last position's logits only (HF ``logits_to_keep=1``) when the
    model's forward declares that argument, to avoid a (batch, prompt, vocab) tensor at prefill.
    """
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True)
    if last_only and _supports_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1
    out = model(**kwargs)
    return out.logits[:, -1, :].float(), out.past_key_values


def _supports_logits_to_keep(model: torch.nn.Module) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- score processors


def apply_repetition_penalty(
    scores: torch.Tensor, context: torch.Tensor, penalty: float, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """CTRL penalty on the tokens in each row's context: negative scores *= p, others /= p.

    ``valid`` (same shape as context) excludes positions, e.g. the left padding (HF 5.x's
    generate ignores the padding of the prompt this way).
    """
    if penalty == 1.0 or context.shape[1] == 0:
        return scores
    vocab = scores.shape[-1]
    tokens = context if valid is None else context.masked_fill(~valid, vocab)
    seen = torch.zeros((scores.shape[0], vocab + 1), dtype=torch.bool, device=scores.device)
    seen = seen.scatter(1, tokens, True)[:, :vocab]
    return torch.where(seen, torch.where(scores < 0, scores * penalty, scores / penalty), scores)


def ban_repeated_ngrams(scores: torch.Tensor, context: torch.Tensor, n: int) -> torch.Tensor:
    """Set to -inf every token that would repeat an n-gram already in the row's context."""
    if n <= 0 or context.shape[1] < n:
        return scores
    windows = context.unfold(1, n, 1)  # (rows, n_windows, n)
    tail = context[:, context.shape[1] - (n - 1) :]  # last n-1 tokens of each row
    hit = (windows[:, :, : n - 1] == tail[:, None, :]).all(-1)  # (rows, n_windows)
    rows, win = hit.nonzero(as_tuple=True)
    if rows.numel():
        scores = scores.index_put((rows, windows[rows, win, n - 1]), torch.tensor(-math.inf, device=scores.device))
    return scores


def _process(
    scores: torch.Tensor, context: torch.Tensor, valid: torch.Tensor, step: int, cfg: DecodingConfig, eos: torch.Tensor
) -> torch.Tensor:
    """Repetition penalty, EOS ban before min_new_tokens, n-gram ban (their order commutes)."""
    scores = apply_repetition_penalty(scores, context, cfg.repetition_penalty, valid)
    if step < cfg.min_new_tokens:
        scores = scores.index_fill(1, eos, -math.inf)
    return ban_repeated_ngrams(scores, context, cfg.no_repeat_ngram_size)


# ----------------------------------------------------------------------------- beam search


@torch.inference_mode()
def beam_search(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: DecodingConfig,
    eos_ids: Sequence[int],
    pad_id: int,
) -> list[list[int]]:
    """Beam search over one batch of prompts; returns each item's best generated token ids.

    The returned ids include the final EOS when the hypothesis finished with one (as LoRA's
    ``best_sequence``). ``cfg.hf_compatible`` selects HF generate's rules (module doc).
    """
    device = _device(model)
    k, hf = cfg.num_beams, cfg.hf_compatible
    eos = torch.as_tensor(list(eos_ids), dtype=torch.long, device=device)
    ids, mask = left_pad(prompts, pad_id, device)
    n_items = ids.shape[0]

    logits, past = _forward(model, ids, mask, _positions(mask), None, last_only=True)
    expand = torch.arange(n_items, device=device).repeat_interleave(k)
    past, logits, mask, prompt_rows = _reorder(past, expand), logits[expand], mask[expand], ids[expand]
    real_len = mask.sum(-1)

    items = torch.arange(n_items, device=device)  # original index of each active item
    beam_scores = torch.full((n_items, k), -1e9, device=device)  # step 0 expands beam 0 only
    beam_scores[:, 0] = 0.0
    generated = torch.zeros((n_items * k, 0), dtype=torch.long, device=device)
    best_score = torch.full((n_items,), -math.inf, device=device)
    best_tokens: list[list[int]] = [[] for _ in range(n_items)]
    n_keep = max(2, 1 + len(eos_ids)) * k if hf else k  # HF keeps spare non-EOS candidates

    for step in range(cfg.max_new_tokens):
        n_active = items.shape[0]
        # LoRA penalises what was generated; HF the whole row (prompt padding: n-grams yes, repetition no).
        if hf:
            context, valid = torch.cat([prompt_rows, generated], 1), mask.bool()
            logp = _process(torch.log_softmax(logits, -1), context, valid, step, cfg, eos)
        else:
            valid = torch.ones_like(generated, dtype=torch.bool)
            logp = torch.log(torch.softmax(_process(logits, generated, valid, step, cfg, eos), -1))
        vocab = logp.shape[-1]
        total = (beam_scores[:, :, None] + logp.view(n_active, k, vocab)).view(n_active, k * vocab)
        top_scores, top_index = torch.topk(total, n_keep, dim=1, largest=True, sorted=True)
        top_beam, top_token = top_index // vocab, top_index % vocab
        is_eos = torch.isin(top_token, eos)
        last = step == cfg.max_new_tokens - 1

        # Finished candidates: EOS within the top k ranks, or everything in the top k at the end.
        ranked = top_scores[:, :k] / float((step + 1) ** cfg.length_penalty)
        done_here = torch.ones_like(is_eos[:, :k]) if last else is_eos[:, :k]
        cand = ranked.masked_fill(~done_here, -math.inf)
        cand_rank = cand.argmax(dim=1)  # argmax returns the first maximum: the best-ranked wins ties
        cand_best = cand.gather(1, cand_rank[:, None]).squeeze(1)
        improved = (cand_best > best_score[items]).nonzero(as_tuple=True)[0].tolist()
        for a in improved:
            beam, rank = int(top_beam[a, cand_rank[a]]), int(cand_rank[a])
            best_score[items[a]] = cand_best[a]
            best_tokens[int(items[a])] = generated[a * k + beam].tolist() + [int(top_token[a, rank])]
        if last:
            break

        # Live beams for the next step.
        if hf:  # best k non-EOS among the kept candidates
            live = torch.topk(top_scores + is_eos.float() * -1e9, k, dim=1).indices
            new_scores = top_scores.gather(1, live)
            new_beam, new_token = top_beam.gather(1, live), top_token.gather(1, live)
        else:  # the top k; the EOS ones are dead slots (-inf) until the next top-k refills them
            new_scores = top_scores.masked_fill(is_eos, -math.inf)
            new_beam, new_token = top_beam, top_token

        # Exact early stop per item: no live beam can beat the best finished score any more.
        keep = torch.ones(n_active, dtype=torch.bool, device=device)
        if cfg.early_stop:
            denom = max(float((step + 2) ** cfg.length_penalty), float(cfg.max_new_tokens ** cfg.length_penalty))
            bound = new_scores.max(dim=1).values / denom
            keep = ~(best_score[items] >= bound)
            if not bool(keep.any()):
                break
        kept = keep.nonzero(as_tuple=True)[0]
        if kept.numel() < n_active:
            items, new_scores, new_beam, new_token = items[kept], new_scores[kept], new_beam[kept], new_token[kept]
            old_base = kept * k
        else:
            old_base = torch.arange(n_active, device=device) * k
        rows = (old_base[:, None] + new_beam).view(-1)

        past = _reorder(past, rows)
        mask = torch.cat([mask[rows], mask.new_ones((rows.shape[0], 1))], 1)
        prompt_rows, real_len = prompt_rows[rows], real_len[rows]
        token = new_token.reshape(-1, 1)
        generated = torch.cat([generated[rows], token], 1)
        beam_scores = new_scores
        logits, past = _forward(model, token, mask, (real_len + step).view(-1, 1), past)

    return best_tokens


def _batches(sources: Sequence[Sequence[int]], size: int):
    for start in range(0, len(sources), size):
        yield sources[start : start + size]


def _prepare(model: torch.nn.Module, tokenizer: Any, cfg: Mapping | DecodingConfig | None):
    cfg = decoding_config(cfg)
    eos_ids = eos_token_ids(tokenizer, cfg)
    return cfg, eos_ids, _pad_id(tokenizer, eos_ids)


def decode_tokens(
    model: torch.nn.Module,
    sources: Sequence[Sequence[int]],
    cfg: DecodingConfig,
    eos_ids: Sequence[int],
    pad_id: int,
) -> list[list[int]]:
    """Generated ids for each source (impl=lora: our beam search; impl=hf: ``generate``)."""
    was_training = model.training
    model.eval()
    search = beam_search if cfg.impl == "lora" else generate_tokens
    out: list[list[int]] = []
    try:
        n_batches = math.ceil(len(sources) / cfg.batch_size)
        for batch in tqdm(_batches(sources, cfg.batch_size), total=n_batches, desc=f"decode[{cfg.impl}]", disable=not cfg.progress):
            out.extend(search(model, batch, cfg, eos_ids, pad_id))
    finally:
        model.train(was_training)
    return out


def decode(model: torch.nn.Module, tokenizer: Any, sources: Sequence[Sequence[int]], cfg: Mapping | DecodingConfig | None = None) -> list[str]:
    """Decode each already-encoded prompt (source tokens + separator) into one cleaned line.

    ``cfg`` is the ``decoding`` config node; ``decoding.impl`` picks our LoRA beam search (default)
    or ``decode_hf``. The model is put in eval mode for the call (training mode is restored).
    """
    cfg, eos_ids, pad_id = _prepare(model, tokenizer, cfg)
    return [tokens_to_text(tokenizer, t, cfg) for t in decode_tokens(model, sources, cfg, eos_ids, pad_id)]


# ----------------------------------------------------------------------------- HF oracle


def hf_generate_kwargs(cfg: DecodingConfig, eos_ids: Sequence[int], pad_id: int) -> dict[str, Any]:
    """The ``generate`` arguments that run the same search as ``hf_compatible`` mode.

    Every value that matters is explicit so a checkpoint's generation_config.json (sampling,
    temperature, bad words...) cannot leak in. ``early_stopping="never"`` makes HF's stop exact.
    """
    return dict(
        do_sample=False,
        num_beams=cfg.num_beams,
        num_return_sequences=1,
        length_penalty=cfg.length_penalty,
        early_stopping="never" if cfg.num_beams > 1 else False,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        repetition_penalty=cfg.repetition_penalty,
        max_new_tokens=cfg.max_new_tokens,
        min_new_tokens=cfg.min_new_tokens,
        eos_token_id=list(eos_ids),
        pad_token_id=pad_id,
        use_cache=True,
        temperature=None,
        top_k=None,
        top_p=None,
    )


@torch.inference_mode()
def generate_tokens(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: DecodingConfig,
    eos_ids: Sequence[int],
    pad_id: int,
) -> list[list[int]]:
    """One batch through ``model.generate``; generated ids cut after the first EOS (kept)."""
    if not hasattr(model, "generate"):
        raise ConfigError(f"decoding.impl=hf needs a model with .generate; {type(model).__name__} has none")
    ids, mask = left_pad(prompts, pad_id, _device(model))
    out = model.generate(input_ids=ids, attention_mask=mask, **hf_generate_kwargs(cfg, eos_ids, pad_id))
    result = []
    for row in out[:, ids.shape[1] :].tolist():
        cut = next((i for i, t in enumerate(row) if t in eos_ids), None)
        result.append(row if cut is None else row[: cut + 1])
    return result


def decode_hf(model: torch.nn.Module, tokenizer: Any, sources: Sequence[Sequence[int]], cfg: Mapping | DecodingConfig | None = None) -> list[str]:
    """``decode`` through transformers ``generate`` (the oracle; same batching and text cut).

    Search semantics are HF's (module doc): identical tokens to ``decode`` with
    ``hf_compatible=true``; identical to LoRA mode only where the two rule sets coincide.
    """
    cfg, eos_ids, pad_id = _prepare(model, tokenizer, cfg)
    cfg = dataclasses.replace(cfg, impl="hf")
    return [tokens_to_text(tokenizer, t, cfg) for t in decode_tokens(model, sources, cfg, eos_ids, pad_id)]
