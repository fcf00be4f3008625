"""``lodabench plan-seeds``: how many seeds a difference needs, from existing runs' variance components.

    lodabench plan-seeds --runs DIR... [--runs-b DIR...] --delta D [--power 0.8] [--alpha 0.05]
                         [--metric M] [--trials N] [--seed S] [--json]

The model assumed (printed with every answer). A run's score on the fixed test set I is
``X_s = mu(I) + u_s``: ``u_s`` is the training noise of seed s (variance ``sigma2``, the *seed*
component, estimated by the sample variance of the runs' recorded scores, ddof=1), and ``mu(I)``
moves with the draw of the N test items (the *item* component). Two systems A, B run with n
seeds each are compared by ``D_hat = mean_A - mean_B``:

* **this test set** (what ``lodabench compare``'s seed level and a t-test over seed means ask):
  ``Var(D_hat) = (sigma2_A + sigma2_B) / n``;
* **the item population** (two configurations given): add ``tau2``, the variance of the difference
  of the seed-mean metrics under resampling of the items (paired: the same items for both, seeds
  held), which more seeds do not shrink. It is estimated by the item bootstrap of
  :mod:`lodabench.results.paired` on the per-item statistics of :mod:`lodabench.scoring.sufficient`
  (exact metrics, BLEU included); with the item x seed interaction folded in, so it is slightly
  conservative for n above the seeds it was measured on.

With one configuration, B is assumed to have A's seed variance (``sigma2_B = sigma2_A``) and the
item term is not estimable (it needs both systems' outputs on the same items): the plan is for
this test set only, and says so. The power of a two-sided test at level alpha is computed two ways:
the normal approximation ``Phi(d/se - z) + Phi(-d/se - z)`` (closed form,
``n = (z_{1-alpha/2} + z_power)^2 (sigma2_A + sigma2_B) / (delta^2 - (z..)^2 tau2)`` up to the other tail),
and Welch's t-test with equal n (noncentral t, df = 2n - 2), which is what 3-5 seeds are tested
with; the t answer is the recommendation. With 2-3 runs the variance estimates are rough
(a 3-run variance has a 95 % interval of about x0.27 to x39): the plan is an order of magnitude.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from lodabench.errors import ConfigError
from lodabench.io import finite_json

MAX_SEEDS = 10_000  # the search stops here: beyond it the answer is "unreachable in practice"
ITEM_TRIALS = 2000


@dataclass(frozen=True)
class Components:
    """Variance components of one metric (its own scale, as metrics.json)."""

    metric: str
    sigma2_a: float
    sigma2_b: float
    tau2: float | None  # item variance of the paired difference; None = not estimable (one config)
    seeds_a: int
    seeds_b: int
    n_items: int | None


@dataclass(frozen=True)
class Plan:
    metric: str
    delta: float
    power: float
    alpha: float
    n_seeds: int | None          # per system, Welch t-test (the recommendation); None = unreachable
    n_seeds_normal: int | None   # per system, normal approximation
    power_at_n: float | None
    n_seeds_this_test_set: int | None  # Welch, item term left out (what a t-test over seed means asks)
    components: Components
    model: str


# --- power --------------------------------------------------------------------------------------


def _se(c: Components, n: int) -> float:
    return math.sqrt((c.sigma2_a + c.sigma2_b) / n + (c.tau2 or 0.0))


def power_normal(delta: float, se: float, alpha: float) -> float:
    """Two-sided z-test power for a true difference ``delta`` with standard error ``se``."""
    from scipy.stats import norm

    if se == 0:
        return 1.0 if delta != 0 else alpha
    z = norm.ppf(1 - alpha / 2)
    return float(norm.cdf(abs(delta) / se - z) + norm.cdf(-abs(delta) / se - z))


def power_welch(delta: float, c: Components, n: int, alpha: float) -> float:
    """Welch's t-test with n seeds per system (equal n: df = 2n - 2), via the noncentral t."""
    from scipy.stats import nct, t

    if n < 2:
        return 0.0
    se = _se(c, n)
    if se == 0:
        return 1.0 if delta != 0 else alpha
    df, nc = 2 * n - 2, abs(delta) / se
    crit = t.ppf(1 - alpha / 2, df)
    value = float(nct.sf(crit, df, nc) + nct.cdf(-crit, df, nc))
    # scipy's noncentral t returns NaN far in the tail (large nc): there the power is that of the z-test
    return value if math.isfinite(value) else power_normal(delta, se, alpha)


def n_closed_form(delta: float, var_seeds: float, tau2: float, power: float, alpha: float) -> float:
    """The textbook n per system, one tail only: ``(z_a + z_b)^2 var / (delta^2 - (z_a + z_b)^2 tau2)``."""
    from scipy.stats import norm

    k = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2
    room = delta ** 2 - k * tau2
    return math.inf if room <= 0 else k * var_seeds / room


def smallest_n(power_of, target: float, start: int = 1) -> int | None:
    """The least n >= start with ``power_of(n) >= target`` (power rises with n), or None."""
    hi = start
    while power_of(hi) < target:  # doubling, then bisection: a few dozen power evaluations
        if hi >= MAX_SEEDS:
            return None
        hi = min(2 * hi, MAX_SEEDS)
    lo = max(start, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_of(mid) >= target else (mid + 1, hi)
    return lo


def plan(c: Components, delta: float, power: float = 0.8, alpha: float = 0.05) -> Plan:
    if not delta > 0:
        raise ConfigError(f"--delta {delta}: the difference to detect must be > 0 (metric's own scale)")
    if not (0 < power < 1 and 0 < alpha < 1):
        raise ConfigError(f"--power {power} / --alpha {alpha}: both must lie strictly between 0 and 1")
    n_t = smallest_n(lambda n: power_welch(delta, c, n, alpha), power, start=2)
    n_z = smallest_n(lambda n: power_normal(delta, _se(c, n), alpha), power)
    fixed = replace(c, tau2=None)
    n_fixed = n_t if c.tau2 is None else smallest_n(lambda n: power_welch(delta, fixed, n, alpha), power, start=2)
    return Plan(c.metric, delta, power, alpha, n_t, n_z,
                None if n_t is None else power_welch(delta, c, n_t, alpha), n_fixed, c, model_text(c))


def model_text(c: Components) -> str:
    item = ("+ tau2 (item resampling of the paired difference; more seeds do not shrink it)"
            if c.tau2 is not None else "(this test set only: the item term needs both systems' outputs)")
    other = "" if c.seeds_b else "; sigma2_B assumed = sigma2_A (one configuration given)"
    return (f"Var(mean_A - mean_B) = (sigma2_A + sigma2_B) / n {item}; sigma2 = sample variance of the "
            f"runs' scores (ddof=1){other}; two-sided Welch t-test, equal n per system")


# --- variance components from run directories -------------------------------------------------------


def _seed_scores(runs, name: str, entry) -> np.ndarray:
    from lodabench.results.compare import _value

    metric, stats, n_items, prefix = entry
    return np.array([_value(r, name, metric, s, n_items, prefix, []) for r, s in zip(runs, stats)], dtype=float)


def _variance(scores: np.ndarray, what: str, name: str) -> float:
    if len(scores) < 2:
        raise ConfigError(f"{what}: {name} needs at least 2 runs (seeds) to estimate the seed variance, got "
                          f"{len(scores)}. Fix: pass every seed's run directory")
    return float(np.var(scores, ddof=1))


def item_variance(entry, s_a: int, trials: int, seed: int) -> float:
    """Variance over item resamples (seeds held) of the difference of the two sides' seed means."""
    from lodabench.results.paired import _scores_on_draw, _seed_means

    metric, stats, n_items, _ = entry
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_items, size=(trials, n_items))
    a = _seed_means(_scores_on_draw(metric, stats[:s_a], idx))
    b = _seed_means(_scores_on_draw(metric, stats[s_a:], idx))
    return float(np.nanvar(a - b, ddof=1))


def _per_item(runs, metrics: list[str] | None) -> dict:
    from lodabench.results.compare import _check_same_task, _classification_stats, _generation_stats

    _check_same_task(runs)
    notes: list[str] = []
    out = (_classification_stats if runs[0].kind == "classification" else _generation_stats)(runs, metrics, notes)
    if not out:
        raise ConfigError(f"plan-seeds: no metric to plan for ({'; '.join(notes) or 'none recorded'})")
    return out


def components(dirs_a: list[str], dirs_b: list[str] | None = None, metrics: list[str] | None = None,
               trials: int = ITEM_TRIALS, seed: int = 0) -> dict[str, Components]:
    """``{metric: Components}`` from one configuration's runs (``dirs_a``) or two."""
    from lodabench.results.compare import load_run

    runs_a = [load_run(p) for p in dirs_a]
    runs_b = [load_run(p) for p in dirs_b or ()]
    out = {}
    for name, entry in _per_item(runs_a + runs_b, metrics).items():
        s_a = len(runs_a)
        scores = _seed_scores(runs_a + runs_b, name, entry)
        var_a = _variance(scores[:s_a], "--runs", name)
        var_b = _variance(scores[s_a:], "--runs-b", name) if runs_b else var_a
        tau2 = item_variance(entry, s_a, trials, seed) if runs_b else None
        out[name] = Components(name, var_a, var_b, tau2, s_a, len(runs_b), entry[2])
    return out


# --- the command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lodabench plan-seeds", description=__doc__.split("\n\n")[0],
                                epilog="The model and how to read the output: docs/statistics.md")
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR", help="one configuration's runs (its seeds)")
    p.add_argument("--runs-b", nargs="+", default=None, metavar="RUN_DIR",
                   help="a second configuration's runs: its own seed variance and the paired item term")
    p.add_argument("--delta", type=float, required=True, help="the true difference to detect, metric's own scale")
    p.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    p.add_argument("--metric", nargs="+", default=None, help="metric names as in metrics.json (default: all)")
    p.add_argument("--trials", type=int, default=ITEM_TRIALS, help="item resamples behind tau2 (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the item resampling")
    p.add_argument("--json", action="store_true", help="print {metric: plan} as JSON")
    return p


def _line(p: Plan) -> str:
    c = p.components
    tau = "n/a" if c.tau2 is None else f"{math.sqrt(c.tau2):.4g}"
    n = (f"unreachable by seeds (the item term alone keeps the power below {p.power:g}: more test items needed)"
         if p.n_seeds is None else f"{p.n_seeds} seeds per system (normal approx. {p.n_seeds_normal})")
    if c.tau2 is not None:
        n += f"; on this test set only: {p.n_seeds_this_test_set or 'unreachable'}"
    return (f"{p.metric:<14} delta={p.delta:g}: {n}; "
            f"sd_seed A={math.sqrt(c.sigma2_a):.4g} B={math.sqrt(c.sigma2_b):.4g}, sd_item={tau} "
            f"({c.seeds_a}+{c.seeds_b} runs, {c.n_items} items)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    comps = components(args.runs, args.runs_b, args.metric, args.trials, args.seed)
    plans = {k: plan(c, args.delta, args.power, args.alpha) for k, c in comps.items()}
    if args.json:
        print(json.dumps(finite_json({k: asdict(v) for k, v in plans.items()}), indent=2, allow_nan=False))
        return 0
    print(f"power {args.power:g} at two-sided alpha {args.alpha:g}; model: {next(iter(plans.values())).model}")
    print("\n".join(_line(p) for p in plans.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
