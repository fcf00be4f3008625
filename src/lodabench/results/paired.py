"""Paired seed x item resampling: nested bootstrap and approximate randomization on exact metrics.

Inputs are, per side, one ``(n_items, k)`` array of per-item sufficient statistics per seed (rows
aligned on the same items across every run) and an :class:`~lodabench.scoring.sufficient.ItemMetric`
that turns sums of rows back into the metric. A side's value is the mean over its seeds of the
metric on the items; ``delta = a - b``.

* **Nested bootstrap** (Clark et al. 2011, MultEval; Koehn 2004 for one seed): each replicate draws
  the items with replacement -- the same draw for both sides, which is what makes it paired -- and,
  the seeds with replacement (independently per side, or one draw for both when the sides'
  seeds are paired: same seed numbers, hence same data order and initialisation); the replicate delta is the difference of the
  seed means of the metric recomputed on the drawn items. ``ci95`` is the 2.5/97.5 percentile
  interval of the replicate deltas; ``se`` their standard deviation (ddof=1; *not* divided by
  sqrt(B): it estimates the spread of delta itself). ``p`` (two-sided, H0: delta = 0) shifts the
  replicates to the null: ``(1 + #{|d_r - d| >= |d|}) / (B + 1)``. sacrebleu's paired-bs (the Moses
  script) instead centres ``|d_r|`` on its mean; the two agree away from delta = 0 and ours gives
  p = 1 for a system against itself.
* **Approximate randomization** (Riezler & Maxwell 2005; Clark et al.'s stratified form): under H0
  the labels "A" and "B" are exchangeable *within an item*: each trial pools the item's outputs of
  all seeds of both sides and deals them back at random (for one seed per side: a fair coin swaps
  the two outputs, as sacrebleu's paired-ar). ``p = (1 + #{|d_t| >= |d|}) / (T + 1)``; ties count
  (sacrebleu counts only ``>``, which gives a system against itself p = 1/(T+1) instead of 1).
* **TOST** (Schuirmann 1987) with margin m on the bootstrap replicates: p_low = P(d_r - d >= d + m),
  p_high = P(d_r - d <= d - m) (each with the +1 correction), ``p_tost = max``; equivalent when
  ``p_tost < 0.05``, i.e. the 90 % shifted interval lies inside (-m, m).

Everything is vectorised over chunks of replicates: linear metrics are matrix products of item
weights with the statistics, so 20000 AR trials over thousands of items take seconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lodabench.errors import ConfigError
from lodabench.scoring.sufficient import ItemMetric

CHUNK_CELLS = 4_000_000  # replicates x items per chunk: bounds memory (~32 MB of float64 per array)
ALPHA = 0.05


@dataclass(frozen=True)
class Sides:
    """Per-seed item statistics of the two sides: ``a[j]`` and ``b[j]`` are ``(n, k)`` arrays."""

    a: Sequence[np.ndarray]
    b: Sequence[np.ndarray]
    # a[j] and b[j] share seed j (same data order and initialisation in this harness): the bootstrap
    # then draws one seed set for both sides, as stats.paired_ttest pairs seeds
    paired_seeds: bool = False

    def __post_init__(self) -> None:
        if self.paired_seeds and len(self.a) != len(self.b):
            raise ConfigError(f"paired seeds need as many runs per side, got {len(self.a)} and {len(self.b)}")

    @property
    def n_items(self) -> int:
        return int(self.a[0].shape[0])

    @property
    def pool(self) -> np.ndarray:
        return np.stack([*self.a, *self.b])  # (sA + sB, n, k)


def _chunks(total: int, n_items: int) -> list[int]:
    size = max(1, CHUNK_CELLS // max(n_items, 1))
    return [min(size, total - start) for start in range(0, total, size)]


def _seed_means(scores: np.ndarray) -> np.ndarray:
    """Mean over seeds; a trial where a metric is undefined for every seed stays NaN (left out of p)."""
    finite = np.isfinite(scores)
    total = np.where(finite, scores, 0.0).sum(-1)
    count = finite.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def observed(metric: ItemMetric, sides: Sides) -> tuple[float, float]:
    """The sides' values on all items (seed means of the metric)."""
    def side(runs):
        return float(np.mean([_score_rows(metric, s[None])[0] for s in runs]))
    return side(sides.a), side(sides.b)


def _score_rows(metric: ItemMetric, items: np.ndarray) -> np.ndarray:
    """Metric of each row of ``(c, n, k)`` item statistics."""
    return metric.score(items.sum(1)) if metric.linear else metric.score(items)


# --- the nested bootstrap -----------------------------------------------------------------------


def _item_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """Multiplicities ``(c, n)`` of drawn item indices ``(c, n)``."""
    c = idx.shape[0]
    flat = (idx + n * np.arange(c)[:, None]).ravel()
    return np.bincount(flat, minlength=c * n).reshape(c, n).astype(float)


def _scores_on_draw(metric: ItemMetric, runs: Sequence[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """``(c, seeds)``: each seed's metric on each replicate's drawn items."""
    if metric.linear:
        w = _item_weights(idx, runs[0].shape[0])
        return np.stack([metric.score(w @ s) for s in runs], axis=1)
    return np.stack([metric.score(s[idx]) for s in runs], axis=1)


def _seed_draw(rng: np.random.Generator, c: int, s: int) -> np.ndarray:
    """Seed weights ``(c, s)`` summing to 1: the seeds drawn with replacement (all of them if s = 1)."""
    picks = rng.integers(0, s, size=(c, s))
    return _item_weights(picks, s) / s


def bootstrap_deltas(metric: ItemMetric, sides: Sides, trials: int, rng: np.random.Generator) -> np.ndarray:
    """Replicate deltas of the nested (seeds, then items) paired bootstrap."""
    n, out = sides.n_items, []
    for c in _chunks(trials, n):
        idx = rng.integers(0, n, size=(c, n))
        wa = _seed_draw(rng, c, len(sides.a))
        wb = wa if sides.paired_seeds else _seed_draw(rng, c, len(sides.b))
        sa, sb = _scores_on_draw(metric, sides.a, idx), _scores_on_draw(metric, sides.b, idx)
        out.append((wa * sa).sum(1) - (wb * sb).sum(1))
    return np.concatenate(out)


# --- approximate randomization ------------------------------------------------------------------


def _dealt_scores(metric: ItemMetric, pool: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``(c, P)``: the metric of each dealt pseudo-run; slot j of item i gets pool[src[:, i, j], i]."""
    n_pool, n, k = pool.shape
    columns = pool.reshape(n_pool * n, k).T.copy()  # (k, P*n): each gather below reads one row
    cols = []
    for j in range(n_pool):
        flat = src[:, :, j].astype(np.intp) * n + np.arange(n)[None, :]
        if metric.linear:  # sum each statistic over the items as it is gathered: contiguous reads
            cols.append(metric.score(np.stack([np.take(col, flat).sum(1) for col in columns], axis=-1)))
        else:
            cols.append(metric.score(np.stack([np.take(col, flat) for col in columns], axis=-1)))
    return np.stack(cols, axis=1)


def _swap_scores(metric: ItemMetric, sides: Sides, swap: np.ndarray) -> np.ndarray:
    """One seed per side: a fair coin per item swaps the two outputs (sacrebleu's paired-ar);
    for a linear metric one matrix product gives both pseudo-systems' sums."""
    a, b = sides.a[0], sides.b[0]
    if metric.linear:
        moved = swap @ (b - a)
        return np.stack([metric.score(a.sum(0) + moved), metric.score(b.sum(0) - moved)], axis=1)
    m = swap[:, :, None].astype(bool)
    return np.stack([metric.score(np.where(m, b, a)), metric.score(np.where(m, a, b))], axis=1)


def _deals(rng: np.random.Generator, c: int, n: int, size: int) -> np.ndarray:
    """``(c, n, size)`` uniform random permutations of the pooled outputs of each item: drawn as
    indices into the table of all size! permutations while that table is small, else by argsort."""
    if math.factorial(size) <= 40320:
        table = np.array(list(itertools.permutations(range(size))), dtype=np.int8)
        return table[rng.integers(0, len(table), size=(c, n))]
    return np.argsort(rng.random((c, n, size)), axis=2)


def ar_deltas(metric: ItemMetric, sides: Sides, trials: int, rng: np.random.Generator) -> np.ndarray:
    """Trial deltas of approximate randomization, outputs shuffled within each item across all seeds."""
    pool, s_a, n, out = sides.pool, len(sides.a), sides.n_items, []
    for c in _chunks(trials, n):
        if pool.shape[0] == 2:
            scores = _swap_scores(metric, sides, rng.integers(0, 2, size=(c, n)).astype(float))
        else:
            scores = _dealt_scores(metric, pool, _deals(rng, c, n, pool.shape[0]))
        out.append(_seed_means(scores[:, :s_a]) - _seed_means(scores[:, s_a:]))
    return np.concatenate(out)


# --- p-values, intervals, equivalence -------------------------------------------------------------


def _tol(d: float) -> float:
    """Float slack so that a resample equal to the observed delta counts as a tie, not a miss."""
    return 1e-9 * max(1.0, abs(d))


def p_two_sided(null_deltas: np.ndarray, d: float) -> float:
    """``(1 + #{|null| >= |d|}) / (R + 1)``; NaN replicates (undefined metric) are left out."""
    null = null_deltas[np.isfinite(null_deltas)]
    if null.size == 0 or not math.isfinite(d):   # the metric is undefined on every resample: no test
        return math.nan
    return float((1 + np.sum(np.abs(null) >= abs(d) - _tol(d))) / (null.size + 1))


def percentile_ci(deltas: np.ndarray, level: float = 0.95) -> list[float]:
    d = deltas[np.isfinite(deltas)]
    if d.size == 0:
        return [math.nan, math.nan]
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def tost(deltas: np.ndarray, d: float, margin: float) -> float:
    """Two one-sided tests of |delta| >= margin on the shifted bootstrap replicates (the larger p)."""
    if not margin > 0:
        raise ConfigError(f"--margin {margin}: an equivalence margin must be > 0 (in the metric's own scale)")
    z = deltas[np.isfinite(deltas)] - d
    if z.size == 0 or not math.isfinite(d):
        return math.nan
    p_low = (1 + np.sum(z >= d + margin - _tol(d))) / (z.size + 1)
    p_high = (1 + np.sum(z <= d - margin + _tol(d))) / (z.size + 1)
    return float(max(p_low, p_high))


@dataclass(frozen=True)
class PairedResult:
    a: float
    b: float
    delta: float
    ci95: list[float]
    se: float
    p: float
    test: str
    trials: int
    p_tost: float | None = None
    equivalent: bool | None = None


def compare_metric(metric: ItemMetric, sides: Sides, test: str = "bootstrap", trials: int = 2000,
                   seed: int = 0, margin: float | None = None, ci_trials: int = 2000) -> PairedResult:
    """One metric's paired comparison of the recomputed values (the CLI substitutes recorded means)."""
    if test not in ("bootstrap", "ar"):
        raise ConfigError(f"--test {test!r}: use bootstrap or ar")
    if trials < 1:
        raise ConfigError(f"--trials {trials}: needs at least 1 resample")
    rng = np.random.default_rng(seed)
    a, b = observed(metric, sides)
    d = a - b
    boot = bootstrap_deltas(metric, sides, trials if test == "bootstrap" else ci_trials, rng)
    p = p_two_sided(boot - d, d) if test == "bootstrap" else p_two_sided(ar_deltas(metric, sides, trials, rng), d)
    p_eq = None if margin is None else tost(boot, d, margin)
    finite = boot[np.isfinite(boot)]
    return PairedResult(a, b, d, percentile_ci(boot), float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan,
                        p, test, trials, p_eq, None if p_eq is None else bool(p_eq < ALPHA))
