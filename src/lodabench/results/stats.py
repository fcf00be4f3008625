"""Statistics over seeds: mean, sample standard deviation, paired t-test.

Conventions (stated in every table footnote):
- ``std`` is the SAMPLE standard deviation (``ddof=1``, divide by n-1), the usual "±" of papers
  that report a spread over a few random seeds. With one seed it is undefined (NaN), never 0.
- ``paired_ttest`` pairs two methods' scores by seed (CondLoRA reports a paired t-test between
  LoRA and CondLoRA). Only seeds present, complete and finite for BOTH methods are paired; the
  seeds used are returned, so a report can say which ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lodabench.errors import LodabenchError

DDOF = 1  # sample standard deviation


@dataclass(frozen=True)
class Summary:
    """Mean and sample std (ddof=1) of the finite values; n counts them."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float | None]) -> Summary:
    """Mean and sample std over the finite values (None/NaN are not data points, never zeros)."""
    arr = np.array([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    n = int(arr.size)
    if n == 0:
        return Summary(math.nan, math.nan, 0)
    mean = float(arr.mean())
    std = float(arr.std(ddof=DDOF)) if n > DDOF else math.nan
    return Summary(mean, std, n)


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired t-test of A against B over matching seeds (statistic > 0: A > B)."""

    statistic: float
    pvalue: float
    n: int
    seeds: tuple
    mean_diff: float


def paired_ttest(a: Mapping[int, float], b: Mapping[int, float], *, what: str = "") -> PairedTest:
    """``scipy.stats.ttest_rel`` on the seeds both ``a`` and ``b`` have (seed -> score).

    Raises LodabenchError when fewer than two seeds match: a paired test needs n >= 2.
    """
    from scipy.stats import ttest_rel

    def finite(d: Mapping[int, float]) -> dict[int, float]:
        return {k: float(v) for k, v in d.items() if v is not None and math.isfinite(float(v))}

    fa, fb = finite(a), finite(b)
    seeds = tuple(sorted(set(fa) & set(fb)))
    if len(seeds) < 2:
        raise LodabenchError(
            f"paired t-test{(' for ' + what) if what else ''} needs at least 2 seeds complete for both "
            f"methods; A has seeds {sorted(fa)}, B has seeds {sorted(fb)}, shared: {list(seeds)}. "
            "Run the missing seeds (e.g. seed=110,111,112) and re-run `lodabench tables`."
        )
    xa = np.array([fa[s] for s in seeds])
    xb = np.array([fb[s] for s in seeds])
    res = ttest_rel(xa, xb)
    return PairedTest(float(res.statistic), float(res.pvalue), len(seeds), seeds, float(np.mean(xa - xb)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input order: the k-th smallest raw p
    becomes ``max_{j<=k} min(1, (m - j + 1) p_(j))`` over the m finite p-values (the family);
    NaN stays NaN and is not counted in m. Rejecting where the adjusted p <= alpha controls the
    family-wise error rate at alpha under any dependence (statsmodels' ``multipletests(method="holm")``
    gives the same numbers)."""
    finite = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out = [math.nan] * len(pvalues)
    m, running = len(finite), 0.0
    for rank, i in enumerate(sorted(finite, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out
