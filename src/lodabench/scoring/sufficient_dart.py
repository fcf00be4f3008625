"""Per-item sufficient statistics of DART's two scorers (:mod:`lodabench.scoring.dart`).

As :mod:`lodabench.scoring.sufficient` does for E2E: per item and run a row of numbers whose column
sums give, through the metric's ``score``, the value the scorer computes on the same items -- on
the full sample, the value ``score_dart`` prints and the run's ``metrics.json`` records, on the
same scales (BLEU 0-100, the others 0-1; ``official_*`` for the Yale-LILY mode). Tests:
tests/test_paired_dart.py, on every golden ``dart_*`` case.

``lora`` mode (GenerationEval eval.py as microsoft/LoRA runs it):

* ``BLEU`` (multi-bleu-detok.perl, 6 references padded with the first): per item the clipped
  hits and totals of orders 1-4, the line's length and its closest reference length (ties to the
  shorter), in the script's own tokenization (:func:`lodabench.scoring.multibleu.item_counts`);
  scored as the script does (``log 0`` = -9999999999, brevity penalty when hyp < ref). The script
  prints ``%.2f`` of 100*BLEU: the unrounded recomputation rounds to the recorded value
  (``ItemMetric.decimals = 2``; compare checks that rounding, not equality).
* ``BLEU_NLTK`` (nltk ``corpus_bleu``, ``SmoothingFunction().method3``): per item nltk's own
  ``modified_precision`` numerator and denominator (the denominator is at least 1 per item, as
  nltk sums it), the hypothesis length and nltk's ``closest_ref_length``; scored as corpus_bleu
  does: 0 when no unigram matches, method3's ``1 / (2^k * denominator)`` for the k-th order without
  a match, brevity penalty 0 for an empty corpus, 1 when hyp > ref.
* ``METEOR`` (the CMU 1.5 jar, ``-l en -norm -r 6`` on the tokenized text): the jar's own
  per-segment statistics -- what the same command with ``-ssOut`` prints, one ``MeteorStats`` row
  per segment (the best reference's, as for the system score), asked of the process's METEOR JVM
  (lodabench.scoring.dart.meteor_15_scored, equal to the file mode to the bit) -- summed and scored as
  ``MeteorScorer.computeMetrics`` (:func:`lodabench.scoring.sufficient._meteor_score`).
* ``TER``: eval.py's TER is a plain mean over items of per-item TERs: rows ``(ter_i, 1)``.

``official`` mode (Yale-LILY/dart run_eval_on_dart.sh): ``official_BLEU`` is multi-bleu.perl on the
3 reference files (whitespace tokens; empty padding lines take part in the closest length),
otherwise as above; ``official_METEOR`` the jar with ``-r 8`` on prepare_files.py's references;
``official_TER`` tercom 7.25's corpus TER = total edits / total of the items' average reference
lengths: rows ``(edits_i, avg_ref_len_i)`` from :func:`lodabench.scoring.tercom_compat.segment_rows`.

Measured on the four golden DART cases (dart_tiny3 and the three 2,721-item dev cases): BLEU and
official_BLEU round to the printed values and equal the Moses scripts' unrounded BLEU to the bit;
BLEU_NLTK, TER and official_TER equal the official values to the bit; METEOR and official_METEOR
within 1.7e-16 (the jar sums its statistics and divides in Java's order). Under resampling the
rows give what the scorers give on the resampled corpus (items repeated), tested on a made-up one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lodabench.errors import ScoringError
from lodabench.scoring import dart
from lodabench.scoring.multibleu import detok_tokenize, moses_item_counts
from lodabench.scoring.sufficient import ItemMetric, _drop_perfect_chunks, _mean_score, _meteor_score, _per_item, _quiet

LORA = ("BLEU", "BLEU_NLTK", "METEOR", "TER")
OFFICIAL = ("official_BLEU", "official_METEOR", "official_TER")
DART_METRICS = LORA + OFFICIAL
METEOR = ("METEOR", "official_METEOR")  # the ones that need Java
BLEU_DECIMALS = 2  # multi-bleu(-detok).perl print "BLEU = %.2f"


# --- BLEU of multi-bleu(-detok).perl --------------------------------------------------------------


def _log_or_floor(x: np.ndarray) -> np.ndarray:
    """multi-bleu's ``my_log``: log, and -9999999999 for 0."""
    return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -9999999999.0)


def moses_bleu_score(s: np.ndarray) -> np.ndarray:
    """100 x the scripts' BLEU (:func:`lodabench.scoring.multibleu.bleu_from_counts`) of summed rows."""
    correct, total, hyp_len, ref_len = s[..., 0:4], s[..., 4:8], s[..., 8], s[..., 9]
    logs = _log_or_floor(np.where(total > 0, correct / np.where(total > 0, total, 1.0), 0.0))
    log_sum = logs[..., 0] + logs[..., 1] + logs[..., 2] + logs[..., 3]  # the script's order
    bp = np.where(hyp_len < ref_len, np.exp(1 - ref_len / np.where(hyp_len > 0, hyp_len, 1.0)), 1.0)
    bleu = bp * np.exp(log_sum / 4)
    return 100 * np.where((ref_len == 0) | (hyp_len == 0), 0.0, bleu)


def moses_rows(hyps: Sequence[str], ref_columns: Sequence[Sequence[str]], detok: bool) -> np.ndarray:
    """``(n, 10)`` item counts of multi-bleu-detok.perl (``detok``) or multi-bleu.perl."""
    return np.array(moses_item_counts(hyps, ref_columns, detok_tokenize if detok else (lambda b: b)), dtype=float)


# --- BLEU_NLTK: nltk corpus_bleu with smoothing method3 ---------------------------------------------


def nltk_rows(hyps_tok: Sequence[str], refs_tok: Sequence[Sequence[str]]) -> np.ndarray:
    """``(n, 10)``: corpus_bleu's per-item numerators and denominators of orders 1-4, hypothesis
    length, closest reference length (zeros for an item bleu_nltk() leaves out)."""
    from nltk.translate.bleu_score import closest_ref_length, modified_precision

    kept, refs, hyps = dart.nltk_bleu_inputs(hyps_tok, refs_tok)
    rows = np.zeros((len(hyps_tok), 10))
    for i, ref_words, hyp in zip(kept, refs, hyps):
        fracs = [modified_precision(ref_words, hyp, n) for n in range(1, 5)]
        rows[i] = [*(f.numerator for f in fracs), *(f.denominator for f in fracs),
                   len(hyp), closest_ref_length(ref_words, len(hyp))]
    return rows


def nltk_bleu_score(s: np.ndarray) -> np.ndarray:
    """corpus_bleu (weights 0.25 x 4, method3) on summed rows (nltk/translate/bleu_score.py:
    corpus_bleu, brevity_penalty, SmoothingFunction.method3)."""
    num, den, hyp_len, ref_len = s[..., 0:4], s[..., 4:8], s[..., 8], s[..., 9]
    k = np.cumsum(num == 0, axis=-1)  # method3: the k-th order without a match gets 1 / (2^k * den)
    p = np.where(num == 0, 1.0 / (2.0 ** k * den), num / den)
    logs = 0.25 * np.log(p)
    s_log = logs[..., 0] + logs[..., 1] + logs[..., 2] + logs[..., 3]  # nltk: math.fsum (within 1 ulp)
    bp = np.where(hyp_len > ref_len, 1.0, np.where(hyp_len == 0, 0.0,
                                                  np.exp(1 - ref_len / np.where(hyp_len == 0, 1.0, hyp_len))))
    return np.where(num[..., 0] == 0, 0.0, bp * np.exp(s_log))


# --- METEOR 1.5 ---------------------------------------------------------------------------------------


def meteor_rows(hyps_per_run: Sequence[Sequence[str]], refs_per_item: Sequence[Sequence[str]],
                num_refs: int) -> list[np.ndarray]:
    """The jar's per-segment statistics of every run's segments, in one call (``-ssOut``'s lines,
    :func:`lodabench.scoring.dart.meteor_15_scored`: one ``MeteorStats.toString()`` line per
    segment; the system score is ``computeMetrics`` of their ``addStats`` aggregate)."""
    flat_hyps = [h for hyps in hyps_per_run for h in hyps]
    lines, _ = dart.meteor_15_scored(flat_hyps, [g for _ in hyps_per_run for g in refs_per_item], num_refs,
                                     score=False)
    try:
        stats = np.array([[float(x) for x in line.split()] for line in lines], dtype=float)
    except ValueError:
        stats = np.zeros((0, 0))
    if stats.ndim != 2 or len(stats) != len(flat_hyps):
        raise ScoringError(f"METEOR 1.5 gave {len(lines)} statistics lines for {len(flat_hyps)} segments "
                           f"({lines[:1]!r})")
    return np.split(_drop_perfect_chunks(stats), len(hyps_per_run))


# --- TER ------------------------------------------------------------------------------------------


def ter_ratio_score(s: np.ndarray) -> np.ndarray:
    """tercom's corpus TER: total edits / total average reference length."""
    return s[..., 0] / s[..., 1]


def official_ter_rows(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """``(n, 2)``: (edits, average reference length) of prepare_files.py's segments."""
    from lodabench.scoring.tercom_compat import segment_rows

    return np.array(segment_rows([h.strip() for h in hyps], dart.official_ter_refs(refs)), dtype=float).reshape(-1, 2)


# --- the metrics ----------------------------------------------------------------------------------

SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "BLEU": moses_bleu_score, "BLEU_NLTK": nltk_bleu_score, "METEOR": _meteor_score, "TER": _mean_score,
    "official_BLEU": moses_bleu_score, "official_METEOR": _meteor_score, "official_TER": ter_ratio_score,
}


def _lora_stats(hyps_per_run, refs, names) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {m: [] for m in names}
    columns = [list(col) for col in zip(*dart.pad_lora_refs(refs))]
    n, hyps_tok, refs_tok = len(refs), [], []
    if set(names) - {"BLEU"}:  # METEOR, TER and BLEU_NLTK read nltk-tokenized text; one cache for all runs
        flat, refs_tok = dart.lora_tokenized([h for hyps in hyps_per_run for h in hyps], refs)
        hyps_tok = [flat[r * n:(r + 1) * n] for r in range(len(hyps_per_run))]
    if "METEOR" in names:
        out["METEOR"] = meteor_rows(hyps_tok, refs_tok, dart.LORA_NUM_REFS)
    for r, hyps in enumerate(hyps_per_run):
        if "BLEU" in names:
            out["BLEU"].append(moses_rows(hyps, columns, detok=True))
        if "BLEU_NLTK" in names:
            out["BLEU_NLTK"].append(nltk_rows(hyps_tok[r], refs_tok))
        if "TER" in names:
            out["TER"].append(_per_item(dart.lora_ter_items(hyps_tok[r], refs_tok)))
    return out


def _official_stats(hyps_per_run, refs, names) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {m: [] for m in names}
    if "official_METEOR" in names:
        out["official_METEOR"] = meteor_rows(hyps_per_run, dart.official_meteor_refs(refs), dart.OFFICIAL_METEOR_REFS)
    for hyps in hyps_per_run:
        if "official_BLEU" in names:
            out["official_BLEU"].append(moses_rows(hyps, dart.official_ref_columns(refs), detok=False))
        if "official_TER" in names:
            out["official_TER"].append(official_ter_rows(hyps, refs))
    return out


def dart_item_metrics(hyps_per_run: Sequence[Sequence[str]], refs: Sequence[Sequence[str]],
                      names: Sequence[str]) -> dict[str, tuple[ItemMetric, list[np.ndarray]]]:
    """``{name: (metric, per-run (n, k) stats)}`` for DART metrics (metrics.json names) of aligned
    outputs and references (``refs[i]``: every reference of item i, as refs.txt holds them)."""
    unknown = [m for m in names if m not in SCORES]
    if unknown:
        raise ScoringError(f"no per-item statistics for {', '.join(unknown)}: the DART metrics are "
                           f"{', '.join(DART_METRICS)}")
    hyps_per_run = [list(h) for h in hyps_per_run]
    refs = [list(g) for g in refs]
    with ThreadPoolExecutor(max_workers=1) as pool:  # the two modes' METEOR JVMs load their tables side by side
        official = pool.submit(_official_stats, hyps_per_run, refs, [m for m in names if m in OFFICIAL])
        stats = {**_lora_stats(hyps_per_run, refs, [m for m in names if m in LORA]), **official.result()}
    return {m: (dart_metric(m), stats[m]) for m in names}


def dart_metric(name: str) -> ItemMetric:
    """The :class:`ItemMetric` of a DART metric (``DART_METRICS``): how its rows are scored; apart
    from the rows, so rows kept elsewhere (e.g. computed once for several tests) can be scored."""
    return ItemMetric(name, _quiet(SCORES[name]), decimals=BLEU_DECIMALS if name.endswith("BLEU") else None)
