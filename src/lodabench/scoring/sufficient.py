"""Per-item sufficient statistics: the corpus metrics of :mod:`lodabench.scoring` recomputed under resampling.

A paired test (:mod:`lodabench.results.paired`) rescoring a corpus metric thousands of times cannot
re-run the official scorers; it needs, per item, numbers whose sums give the metric back. Each
:class:`ItemMetric` holds a per-item array ``(n_items, k)`` per run and a ``score`` that maps column
sums (any leading shape) to the metric, so that on the full sample ``score(stats.sum(0))`` is the
official value (tests: tests/test_compare.py, tests/test_paired_dart.py). Where a scorer prints a
rounded value (``ItemMetric.decimals``), ``score`` is the unrounded metric, which rounds to the
printed one. Where they differ from a plain re-score:

* BLEU (``measure_scores.py -p``, :func:`lodabench.scoring.mteval.python_bleu_nist`): per item the
  clipped hits and n-gram totals of orders 1-4 and the closest reference length -- exact under any
  resample, as in sacrebleu's paired tests.
* NIST (-p): the information weight of an n-gram depends on the reference counts of the whole
  corpus; here it is fixed from the compared items' full reference set (as CIDEr's document
  frequencies are), so a resample re-weighs items but not n-grams. Exact on the full sample.
* BLEU/NIST of the Perl mteval script (``data.mteval=perl``,
  :func:`lodabench.scoring.mteval.perl_mteval_tables`): per item the matches and counts of orders
  1-4 (BLEU, with mteval's 1/2^k smoothing applied to the sums) and the information sums and counts
  of orders 1-5, reference words and number of references (NIST; weights fixed as above). The
  script prints 4 decimals, which measure_scores.py and ``metrics.json`` keep
  (``decimals=4``): the unrounded value equals ``perl_bleu_nist_exact`` (BLEU to the bit; NIST within
  2e-13, the information being summed per item first) and rounds to the printed values on every
  golden E2E case (tests/test_paired_dart.py).
* METEOR 1.5: the jar's own per-segment statistics (``SCORE`` lines: lengths, function words,
  stage matches, chunks), summed and scored with the formula of ``MeteorScorer.computeMetrics``
  and the ``-l en -norm`` parameters -- what the jar's ``EVAL`` line does for the corpus score.
* ROUGE_L and CIDEr(-D): pycocoevalcap's corpus values are means of per-item scores; CIDEr's
  document frequencies come from the full reference set of the compared items.
* DART's two scorers (``data.scorer=dart``, both modes): :mod:`lodabench.scoring.sufficient_dart`.
* GLUE: accuracy per item; F1 from (tp, fp, fn); MCC from the confusion margins (multi-class
  form of scikit-learn); Pearson from centred moments; Spearman (not a function of sums) is
  recomputed on each resample from the resampled items' ranks (``linear=False``).

A plugin's scorer has no per-item statistics: :func:`unsupported_generation` says so and the
compare CLI skips its metrics with that message.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lodabench.errors import ScoringError
from lodabench.scoring.glue import SCALE, TASK_METRICS
from lodabench.scoring.mteval import _max_ref_counts, _ngrams, _perl_nist_lp, tokenize_13a


@dataclass(frozen=True)
class ItemMetric:
    """One metric as per-item statistics: ``score(sums)`` for ``linear`` metrics (sums over items of
    the ``(n, k)`` per-item rows, any leading shape), else ``score(items)`` on ``(c, n, k)`` item rows."""

    name: str
    score: Callable[[np.ndarray], np.ndarray]
    linear: bool = True
    # the scorer prints (and metrics.json records) the value rounded to this many decimals; ``score``
    # is unrounded and rounds to the recorded value on the full sample (None: recorded unrounded)
    decimals: int | None = None


def _quiet(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Scores divide by zero on degenerate resamples by design (e.g. no 4-gram); numpy must not warn."""
    def wrapped(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(np.asarray(x, dtype=float))
    return wrapped


# --- BLEU / NIST of the -p port -------------------------------------------------------------------


def _bleu_item(pred: list[str], group: list[list[str]]) -> list[float]:
    hits = [sum(min(_max_ref_counts(group, n).get(g, 0), c) for g, c in Counter(_ngrams(pred, n)).items())
            for n in range(1, 5)]
    cands = [len(pred) - i for i in range(4)]
    closest = len(min(group, key=lambda r: (abs(len(r) - len(pred)), len(r))))
    return [*hits, *cands, closest]


def _bleu_score(s: np.ndarray) -> np.ndarray:
    hits, cands, ref_len = s[..., 0:4], s[..., 4:8], s[..., 8]
    c1 = cands[..., 0]
    bp = np.where(c1 <= ref_len, np.exp(1.0 - ref_len / np.where(c1 != 0, c1, 1e-5)), 1.0)
    log_sum = np.log(np.maximum(hits, 1e-15) / np.maximum(cands, 1e-9)).sum(-1)
    return bp * np.exp(log_sum / 4)


_NIST_BETA = -math.log(0.5) / math.log(1.5) ** 2


def _nist_info(ref_toks: list[list[list[str]]]) -> Callable[[tuple[str, ...]], float]:
    """pymteval's information weight, from the reference counts of the given items (fixed)."""
    counts: list[Counter] = [Counter() for _ in range(6)]
    for group in ref_toks:
        counts[0][()] += sum(len(r) for r in group)
        for ref in group:
            for n in range(1, 6):
                counts[n].update(_ngrams(ref, n))

    def info(gram: tuple[str, ...]) -> float:
        if gram not in counts[len(gram)]:
            return 0.0
        return math.log(counts[len(gram) - 1][gram[:-1]] / float(counts[len(gram)][gram]), 2)
    return info


def _nist_item(pred: list[str], group: list[list[str]], info) -> list[float]:
    hit_infos = []
    for n in range(1, 6):
        merged = _max_ref_counts(group, n)
        hit_infos.append(sum(info(g) * min(c, merged.get(g, 0)) for g, c in Counter(_ngrams(pred, n)).items()))
    lens = [len(pred) - n for n in range(5)]
    return [*hit_infos, *lens, sum(len(r) for r in group) / float(len(group))]


def _nist_score(s: np.ndarray) -> np.ndarray:
    hit_infos, totals, avg_ref = s[..., 0:5], s[..., 5:10], s[..., 10]
    # a zero n-gram total: the official -p script divides by zero; the metric is undefined (NaN)
    nist = np.where((totals == 0).any(-1), np.nan, (hit_infos / np.where(totals == 0, 1, totals)).sum(-1))
    ratio = totals[..., 0] / avg_ref
    lp = np.where(ratio >= 1, 1.0, np.where(ratio <= 0, 0.0, np.exp(-_NIST_BETA * np.log(np.abs(ratio) + (ratio == 0)) ** 2)))
    return lp * nist


def mteval_stats(hyps_per_run: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> dict[str, list[np.ndarray]]:
    """``{"BLEU": [per run (n, 9)], "NIST": [per run (n, 11)]}`` of measure_scores.py -p."""
    ref_toks = [[tokenize_13a(r, "python") for r in group] for group in refs]
    info = _nist_info(ref_toks)
    out: dict[str, list[np.ndarray]] = {"BLEU": [], "NIST": []}
    for hyps in hyps_per_run:
        toks = [tokenize_13a(h, "python") for h in hyps]
        out["BLEU"].append(np.array([_bleu_item(p, g) for p, g in zip(toks, ref_toks)], dtype=float))
        out["NIST"].append(np.array([_nist_item(p, g, info) for p, g in zip(toks, ref_toks)], dtype=float))
    return out


# --- BLEU / NIST of the Perl mteval script (data.mteval=perl) ---------------------------------------
# :func:`lodabench.scoring.mteval.perl_mteval_tables` step by step, split into per-item rows.


def _perl_info(ref_toks: list[list[list[str]]]) -> Callable[[tuple[str, ...]], float]:
    """mteval-v13a's information weight from the given items' reference n-grams (fixed, as -p NIST's)."""
    counts: Counter = Counter()
    tot_words = 0
    for group in ref_toks:
        for ref in group:
            tot_words += len(ref)
            for n in range(1, 6):
                counts.update(" ".join(g) for g in _ngrams(ref, n))

    def info(gram: tuple[str, ...]) -> float:
        prefix = " ".join(gram[:-1])
        denom = counts[prefix] if prefix not in ("", "0") else tot_words  # Perl: "" and "0" are false
        return -math.log(counts[" ".join(gram)] / denom) / math.log(2)
    return info


def _perl_closest(pred: list[str], group: list[list[str]]) -> int:
    """The script's closest reference length: the first reference seeds it, empty ones are skipped."""
    closest = len(group[0])
    for ref in group[1:]:
        d_new, d_cur = abs(len(pred) - len(ref)), abs(len(pred) - closest)
        if len(ref) and (d_new < d_cur or (d_new == d_cur and len(ref) < closest)):
            closest = len(ref)
    return closest


def _perl_item(pred: list[str], group: list[list[str]], info) -> tuple[list[float], list[float]]:
    """BLEU row (matches 1-4, counts 1-4, closest ref length) and NIST row (information 1-5,
    counts 1-5, reference words, references, 1) of one item."""
    match, info_sum = [0] * 5, [0.0] * 5
    for n in range(1, 6):
        merged = _max_ref_counts(group, n)
        for gram, c in Counter(_ngrams(pred, n)).items():
            if gram in merged:
                match[n - 1] += min(c, merged[gram])
                info_sum[n - 1] += info(gram) * min(c, merged[gram])
    cnt = [max(0, len(pred) - n + 1) for n in range(1, 6)]
    bleu = [*match[:4], *cnt[:4], _perl_closest(pred, group)]
    return bleu, [*info_sum, *cnt, sum(len(r) for r in group), len(group), 1]


def _perl_bleu_score(s: np.ndarray) -> np.ndarray:
    """mteval's smoothed BLEU: an order with counts but no match adds log(1 / (2^k * count))."""
    match, cnt, ref_len = s[..., 0:4], s[..., 4:8], s[..., 8]
    c1 = cnt[..., 0]
    exp_len = np.where(c1 > 0, np.exp(np.minimum(0.0, 1 - ref_len / np.where(c1 > 0, c1, 1))), 0.0)
    unmatched = (match == 0) & (cnt > 0)
    smooth = 2.0 ** np.cumsum(unmatched, axis=-1)
    safe = np.where(cnt > 0, cnt, 1)
    iscore = np.where(cnt == 0, 0.0, np.where(unmatched, np.log(1 / (smooth * safe)), np.log(match / safe)))
    log_sum = ((iscore[..., 0] + iscore[..., 1]) + iscore[..., 2]) + iscore[..., 3]
    return np.exp(log_sum / 4) * exp_len


def _perl_nist_score(s: np.ndarray) -> np.ndarray:
    info, cnt, ref_words, n_refs, n_items = s[..., 0:5], s[..., 5:10], s[..., 10], s[..., 11], s[..., 12]
    ind = info / np.maximum(cnt, 1)
    nist_sum = (((ind[..., 0] + ind[..., 1]) + ind[..., 2]) + ind[..., 3]) + ind[..., 4]
    ratio = cnt[..., 0] / (ref_words / (n_refs / n_items))  # e2e-metrics' edit: mean references per item
    return nist_sum * np.vectorize(_perl_nist_lp, otypes=[float])(ratio)


def perl_mteval_stats(hyps_per_run, refs) -> dict[str, list[np.ndarray]]:
    """``{"BLEU": [per run (n, 9)], "NIST": [per run (n, 13)]}`` of the Perl mteval script."""
    ref_toks = [[tokenize_13a(r, "perl") for r in group] for group in refs]
    info = _perl_info(ref_toks)
    out: dict[str, list[np.ndarray]] = {"BLEU": [], "NIST": []}
    for hyps in hyps_per_run:
        rows = [_perl_item(tokenize_13a(h, "perl"), g, info) for h, g in zip(hyps, ref_toks)]
        out["BLEU"].append(np.array([b for b, _ in rows], dtype=float).reshape(-1, 9))
        out["NIST"].append(np.array([n for _, n in rows], dtype=float).reshape(-1, 13))
    return out


# --- METEOR 1.5 from the jar's segment statistics --------------------------------------------------

# meteor-1.5 ``-l en`` defaults (Language.java / the 1.5 README): alpha beta gamma delta and the
# module weights of exact, stem, synonym, paraphrase -- what pycocoevalcap's jar runs with ``-norm``.
METEOR_EN = {"alpha": 0.85, "beta": 0.20, "gamma": 0.60, "delta": 0.75, "weights": (1.0, 0.6, 0.8, 0.6)}


def _meteor_score(s: np.ndarray) -> np.ndarray:
    """``MeteorScorer.computeMetrics`` on summed ``MeteorStats`` rows (the jar's EVAL aggregation)."""
    p = METEOR_EN
    a, b, g, d, w = p["alpha"], p["beta"], p["gamma"], p["delta"], np.array(p["weights"])
    t_len, r_len, t_fun, r_fun = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
    stages = s[..., 4:4 + 4 * len(w)].reshape(*s.shape[:-1], len(w), 4)
    chunks, t_words, r_words = s[..., -3], s[..., -2], s[..., -1]
    t_wlen = d * (t_len - t_fun) + (1 - d) * t_fun
    r_wlen = d * (r_len - r_fun) + (1 - d) * r_fun
    t_match = (stages[..., 0] * w * d + stages[..., 2] * w * (1 - d)).sum(-1)
    r_match = (stages[..., 1] * w * d + stages[..., 3] * w * (1 - d)).sum(-1)
    prec, rec = t_match / t_wlen, r_match / r_wlen
    fmean = 1.0 / ((1 - a) / prec + a / rec)
    t_total, r_total = stages[..., [0, 2]].sum((-1, -2)), stages[..., [1, 3]].sum((-1, -2))
    perfect = (t_total == t_len) & (r_total == r_len) & (chunks == 1)
    frag = np.where(perfect, 0.0, chunks / ((t_words + r_words) / 2))
    score = fmean * (1 - g * frag ** b)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def meteor_segment_stats(tok_hyps: list[str], tok_refs: list[list[str]]) -> np.ndarray:
    """The jar's ``SCORE`` statistics, one row per item, for PTB-tokenized text (this process's JVM)."""
    from lodabench.scoring.coco import shared_meteor

    with shared_meteor() as meteor:
        rows = meteor.segment_stats(tok_hyps, tok_refs)
    try:
        stats = np.array([[float(x) for x in row.split()] for row in rows], dtype=float)
    except ValueError:
        raise ScoringError(f"METEOR 1.5 answered {rows[:1]!r} where segment statistics were expected") from None
    return _drop_perfect_chunks(stats)


def _drop_perfect_chunks(s: np.ndarray) -> np.ndarray:
    """``MeteorStats.addStats`` adds no chunk for a perfectly matched segment (all words, one chunk);
    zeroing it per row makes a plain sum of rows the jar's aggregate."""
    n_mod = (s.shape[1] - 7) // 4
    stages = s[:, 4:4 + 4 * n_mod].reshape(len(s), n_mod, 4)
    t_total, r_total = stages[..., [0, 2]].sum((-1, -2)), stages[..., [1, 3]].sum((-1, -2))
    perfect = (t_total == s[:, 0]) & (r_total == s[:, 1]) & (s[:, -3] == 1)
    s = s.copy()
    s[perfect, -3] = 0
    return s


# --- ROUGE_L, CIDEr, METEOR: the COCO part ---------------------------------------------------------


def _ptb_all(hyps_per_run: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]):
    """PTB-tokenize every run's outputs and the references in two JVMs (coco_scores' tokenization)."""
    from lodabench.scoring.coco import ptb_tokenize

    flat_refs = [r for group in refs for r in group]
    tok_flat = ptb_tokenize(flat_refs)
    tok_refs, start = [], 0
    for group in refs:
        tok_refs.append(tok_flat[start:start + len(group)])
        start += len(group)
    flat_hyps = [h for hyps in hyps_per_run for h in hyps]
    tok_hyps_flat = ptb_tokenize(flat_hyps)
    n = len(refs)
    return [tok_hyps_flat[i * n:(i + 1) * n] for i in range(len(hyps_per_run))], tok_refs


def _per_item(values) -> np.ndarray:
    """A mean metric's rows: (value, 1), so that resampled sums give the resampled mean."""
    values = np.asarray(values, dtype=float)
    return np.stack([values, np.ones_like(values)], axis=1)


def _mean_score(s: np.ndarray) -> np.ndarray:
    return s[..., 0] / s[..., 1]


def coco_stats(hyps_per_run, refs, names: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Per-item METEOR statistics and ROUGE_L / CIDEr scores of the runs (Java needed)."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    tok_hyps_runs, tok_refs = _ptb_all(hyps_per_run, refs)
    ids = [f"inst-{i}" for i in range(len(refs))]
    gts = dict(zip(ids, tok_refs))
    out: dict[str, list[np.ndarray]] = {m: [] for m in names}
    if "METEOR" in names:  # one JVM for all runs: its paraphrase table loads once
        flat = meteor_segment_stats([h for t in tok_hyps_runs for h in t], [g for _ in tok_hyps_runs for g in tok_refs])
        out["METEOR"] = np.split(flat, len(tok_hyps_runs))
    for tok_hyps in tok_hyps_runs:
        res = {i: [h] for i, h in zip(ids, tok_hyps)}
        if "ROUGE_L" in names:
            out["ROUGE_L"].append(_per_item(Rouge().compute_score(gts, res)[1]))
        if "CIDEr" in names:
            out["CIDEr"].append(_per_item(Cider().compute_score(gts, res)[1]))
    return out


# --- the generation metrics -----------------------------------------------------------------------

E2E_SCORES = {"BLEU": _bleu_score, "NIST": _nist_score, "METEOR": _meteor_score,
              "ROUGE_L": _mean_score, "CIDEr": _mean_score}
COCO = ("METEOR", "ROUGE_L", "CIDEr")


PERL_SCORES = {"BLEU": _perl_bleu_score, "NIST": _perl_nist_score}
PERL_DECIMALS = 4  # mteval-v13a prints "BLEU score = %.4f", measure_scores.py parses that


def unsupported_generation(scorer: str, mteval: str = "python") -> str | None:
    """Why compare cannot recompute this scorer's metrics, or None when it can (e2e in both mteval
    variants: :func:`generation_metrics`; dart: :mod:`lodabench.scoring.sufficient_dart`)."""
    if scorer not in ("e2e", "dart"):
        return (f"data.scorer={scorer}: per-item statistics exist only for the built-in e2e and dart "
                "scorers' metrics")
    return None


def _e2e_metric(name: str, mteval: str) -> ItemMetric:
    if mteval == "perl" and name in PERL_SCORES:
        return ItemMetric(name, _quiet(PERL_SCORES[name]), decimals=PERL_DECIMALS)
    return ItemMetric(name, _quiet(E2E_SCORES[name]))


def generation_metrics(hyps_per_run, refs, names: Sequence[str],
                       mteval: str = "python") -> dict[str, tuple[ItemMetric, list[np.ndarray]]]:
    """``{name: (metric, per-run (n, k) stats)}`` for E2E metrics of aligned outputs and references;
    ``mteval``: the BLEU/NIST variant (``data.mteval``: python = measure_scores.py -p, perl)."""
    unknown = [m for m in names if m not in E2E_SCORES]
    if unknown:
        raise ScoringError(f"no per-item statistics for {', '.join(unknown)}: the E2E metrics are "
                           f"{', '.join(E2E_SCORES)}")
    if mteval not in ("python", "perl"):
        raise ScoringError(f"unknown mteval {mteval!r}: use 'python' or 'perl'.")
    stats: dict[str, list[np.ndarray]] = {}
    if {"BLEU", "NIST"} & set(names):
        stats.update((perl_mteval_stats if mteval == "perl" else mteval_stats)(hyps_per_run, refs))
    coco = [m for m in names if m in COCO]
    if coco:
        stats.update(coco_stats(hyps_per_run, refs, coco))
    return {m: (_e2e_metric(m, mteval), stats[m]) for m in names}


# --- GLUE ---------------------------------------------------------------------------------------


def _accuracy_rows(pred, gold) -> np.ndarray:
    return _per_item(SCALE * (pred == gold))


def _f1_rows(pred, gold) -> np.ndarray:  # sklearn's f1_score: positive class 1, 0 when undefined
    return np.stack([(pred == 1) & (gold == 1), (pred == 1) & (gold != 1), (pred != 1) & (gold == 1)], 1).astype(float)


def _f1_score(s: np.ndarray) -> np.ndarray:
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    den = 2 * tp + fp + fn
    return np.where(den == 0, 0.0, SCALE * 2 * tp / np.where(den == 0, 1, den))


def _mcc_rows(classes: np.ndarray):
    def rows(pred, gold) -> np.ndarray:
        t = (gold[:, None] == classes[None, :]).astype(float)
        p = (pred[:, None] == classes[None, :]).astype(float)
        return np.concatenate([t, p, (pred == gold)[:, None], np.ones((len(pred), 1))], 1)
    return rows


def _mcc_score(s: np.ndarray) -> np.ndarray:
    """scikit-learn's multi-class MCC from the confusion margins; 0 where it is undefined."""
    k = (s.shape[-1] - 2) // 2
    t, p, c, n = s[..., :k], s[..., k:2 * k], s[..., -2], s[..., -1]
    cov_tp = c * n - (t * p).sum(-1)
    den = np.sqrt((n ** 2 - (p * p).sum(-1)) * (n ** 2 - (t * t).sum(-1)))
    return np.where(den == 0, 0.0, SCALE * cov_tp / np.where(den == 0, 1, den))


def _pearson_rows(center: tuple[float, float]):
    def rows(pred, gold) -> np.ndarray:
        # centred on the full sample's means: raw moments of STS-B scores would lose digits
        x, y = pred.astype(float) - center[0], gold.astype(float) - center[1]
        return np.stack([x, y, x * x, y * y, x * y, np.ones_like(x)], 1)
    return rows


def _pearson_score(s: np.ndarray) -> np.ndarray:
    x, y, xx, yy, xy, n = (s[..., i] for i in range(6))
    cov = xy - x * y / n
    return SCALE * cov / np.sqrt((xx - x * x / n) * (yy - y * y / n))


def _pair_rows(pred, gold) -> np.ndarray:
    return np.stack([pred.astype(float), gold.astype(float)], 1)


def _spearman_items(items: np.ndarray) -> np.ndarray:
    """Spearman of each resample (rows of ``(c, n, 2)``): Pearson of average ranks, as scipy's."""
    from scipy.stats import rankdata

    r = rankdata(items, axis=1)
    r = r - r.mean(1, keepdims=True)
    return SCALE * (r[..., 0] * r[..., 1]).sum(1) / np.sqrt((r[..., 0] ** 2).sum(1) * (r[..., 1] ** 2).sum(1))


def _glue_parts(metric: str, preds: list[np.ndarray], gold: np.ndarray):
    if metric == "accuracy":
        return _accuracy_rows, ItemMetric(metric, _quiet(_mean_score))
    if metric == "f1":
        return _f1_rows, ItemMetric(metric, _quiet(_f1_score))
    if metric == "mcc":
        classes = np.unique(np.concatenate([gold, *preds]))
        return _mcc_rows(classes), ItemMetric(metric, _quiet(_mcc_score))
    if metric == "pearson":
        center = (float(np.mean(np.concatenate(preds))), float(np.mean(gold)))
        return _pearson_rows(center), ItemMetric(metric, _quiet(_pearson_score))
    if metric == "spearman":
        return _pair_rows, ItemMetric(metric, _quiet(_spearman_items), linear=False)
    raise ScoringError(f"no per-item statistics for GLUE metric {metric!r}")


def glue_item_metrics(task: str, preds_per_run: Sequence[Sequence], labels: Sequence,
                      names: Sequence[str] | None = None) -> dict[str, tuple[ItemMetric, list[np.ndarray]]]:
    """``{metric: (ItemMetric, per-run (n, k) rows)}`` for a GLUE task's metrics (x100, as glue_metrics)."""
    if task not in TASK_METRICS:
        raise ScoringError(f"unknown GLUE task {task!r}: expected one of {', '.join(TASK_METRICS)}.")
    gold = np.asarray(labels)
    preds = [np.asarray(p) for p in preds_per_run]
    out = {}
    for metric in names or TASK_METRICS[task]:
        rows, item_metric = _glue_parts(metric, preds, gold)
        out[metric] = (item_metric, [rows(p, gold) for p in preds])
    return out


def full_sample(metric: ItemMetric, stats: np.ndarray) -> float:
    """The metric on all items (equals the official scorer's value; tests check it)."""
    if metric.linear:
        return float(metric.score(stats.sum(0)))
    return float(metric.score(stats[None])[0])
