"""lodabench.results.paired against closed forms and against sacrebleu's own paired tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from lodabench.errors import ConfigError
from lodabench.results.paired import Sides, ar_deltas, bootstrap_deltas, compare_metric
from lodabench.scoring.sufficient import ItemMetric, glue_item_metrics

E2E = Path(__file__).resolve().parent.parent / "results/smollm2_e2e/runs/e2e/smollm2-135m"
ACC = ItemMetric("mean", lambda s: s[..., 0] / s[..., 1])


def _rows(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.stack([values, np.ones_like(values)], 1)


def _exact_sign_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact paired permutation p of an accuracy difference: a sign test over the discordant items."""
    n_a = int((correct_a & ~correct_b).sum())
    n_b = int((correct_b & ~correct_a).sum())
    d = n_a + n_b
    k = np.arange(d + 1)
    return float(binom.pmf(k, d, 0.5)[np.abs(2 * k - d) >= abs(n_a - n_b)].sum())


@pytest.mark.parametrize("flip_a,flip_b", [(0.25, 0.30), (0.2, 0.2), (0.1, 0.3)])
def test_ar_matches_the_exact_sign_test(flip_a, flip_b):
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 2, 400)
    pred_a = np.where(rng.random(400) < flip_a, 1 - gold, gold)
    pred_b = np.where(rng.random(400) < flip_b, 1 - gold, gold)
    metric, stats = glue_item_metrics("sst2", [pred_a, pred_b], gold)["accuracy"]
    res = compare_metric(metric, Sides([stats[0]], [stats[1]]), "ar", 20000, seed=1)
    assert res.delta == pytest.approx(100 * ((pred_a == gold).mean() - (pred_b == gold).mean()), abs=1e-12)
    assert abs(res.p - _exact_sign_p(pred_a == gold, pred_b == gold)) < 0.01


def test_bootstrap_se_of_a_mean_is_the_plugin_formula():
    """SE of a mean difference = sd_pop(d_i) / sqrt(n); the SE is the replicates' sd, not over sqrt(B)."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 2.0, 500), rng.normal(0.8, 2.0, 500)
    deltas = bootstrap_deltas(ACC, Sides([_rows(a)], [_rows(b)]), 20000, np.random.default_rng(0))
    want = np.std(a - b) / np.sqrt(len(a))
    assert np.std(deltas, ddof=1) == pytest.approx(want, rel=0.03)
    res = compare_metric(ACC, Sides([_rows(a)], [_rows(b)]), "bootstrap", 20000, seed=0)
    assert res.se == pytest.approx(want, rel=0.03)
    assert res.ci95[0] < res.delta < res.ci95[1]
    assert res.ci95[1] - res.ci95[0] == pytest.approx(2 * 1.96 * want, rel=0.05)


@pytest.mark.parametrize("test", ["bootstrap", "ar"])
@pytest.mark.parametrize("seeds", [1, 3])
def test_a_system_against_itself(test, seeds):
    rng = np.random.default_rng(5)
    runs = [_rows(rng.normal(size=50)) for _ in range(seeds)]
    for margin in (1e-6, 0.5, 100.0):
        res = compare_metric(ACC, Sides(runs, runs, paired_seeds=True), test, 2000, seed=0, margin=margin)
        assert (res.delta, res.p, res.ci95) == (0.0, 1.0, [0.0, 0.0])
        assert res.equivalent and res.p_tost < 0.05


def test_unpaired_seeds_of_one_system_still_give_p_1_but_a_seed_spread():
    rng = np.random.default_rng(5)
    runs = [_rows(rng.normal(size=50)) for _ in range(3)]
    res = compare_metric(ACC, Sides(runs, runs), "bootstrap", 2000, seed=0)
    assert (res.delta, res.p) == (0.0, 1.0) and res.ci95[0] < 0 < res.ci95[1]


def test_tost_needs_a_positive_margin_and_sees_a_real_difference():
    a, b = _rows(np.full(100, 1.0)), _rows(np.r_[np.zeros(50), np.ones(50)])
    with pytest.raises(ConfigError, match="margin"):
        compare_metric(ACC, Sides([a], [b]), margin=0.0)
    res = compare_metric(ACC, Sides([a], [b]), "bootstrap", 2000, margin=0.1)
    assert res.delta == 0.5 and not res.equivalent and res.p < 0.01


def test_nested_bootstrap_resamples_seeds_too():
    """Seeds that disagree widen the interval over the same items: the seed level is resampled."""
    rng = np.random.default_rng(11)
    base = rng.normal(size=300)
    spread = [_rows(base + off) for off in (-1.0, 0.0, 1.0)]
    tight = [_rows(base) for _ in range(3)]
    ref = [_rows(base - 0.1)] * 3
    wide = compare_metric(ACC, Sides(spread, ref), "bootstrap", 4000, seed=0)
    narrow = compare_metric(ACC, Sides(tight, ref), "bootstrap", 4000, seed=0)
    assert wide.delta == pytest.approx(narrow.delta) == pytest.approx(0.1)
    assert wide.ci95[1] - wide.ci95[0] > 5 * (narrow.ci95[1] - narrow.ci95[0])
    assert wide.ci95[0] < wide.delta < wide.ci95[1]


def test_ar_with_seeds_permutes_within_items():
    """Identical per-item outputs across all six runs but for a constant shift on side A: every deal
    mixes them, so AR finds the shift (rather than calling it seed noise)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    deltas = ar_deltas(ACC, Sides([_rows(x + 0.5)] * 3, [_rows(x)] * 3), 2000, np.random.default_rng(0))
    assert np.abs(deltas).max() < 0.5
    res = compare_metric(ACC, Sides([_rows(x + 0.5)] * 3, [_rows(x)] * 3), "ar", 2000)
    assert res.p == pytest.approx(1 / 2001)


# --- sacrebleu's paired-bs / paired-ar on its own BLEU ---------------------------------------------


def _sacrebleu_pair():
    from lodabench.scoring.textio import read_hypotheses, read_reference_groups
    a = read_hypotheses(E2E / "ft/experiment=smollm2_e2e,trainer.lr=5e-05/seed110/hyp.txt")
    b = read_hypotheses(E2E / "lora/experiment=smollm2_e2e,trainer.lr=0.001/seed111/hyp.txt")
    groups = read_reference_groups(E2E / "ft/experiment=smollm2_e2e,trainer.lr=5e-05/seed110/refs.txt")
    width = max(map(len, groups))
    refs = [[g[i] if i < len(g) else None for g in groups] for i in range(width)]  # sacrebleu: streams
    return a, b, refs


def _sacrebleu_metric():
    from sacrebleu.metrics import BLEU

    bleu = BLEU()

    def score(sums: np.ndarray) -> np.ndarray:
        flat = sums.reshape(-1, sums.shape[-1])
        return np.array([bleu._compute_score_from_stats(list(row)).score for row in flat]).reshape(sums.shape[:-1])
    return bleu, ItemMetric("sacreBLEU", score)


@pytest.mark.parametrize("test", ["ar", "bs"])
def test_agrees_with_sacrebleu_paired_tests(test):
    from sacrebleu.significance import _paired_ar_test, _paired_bs_test

    hyp_a, hyp_b, refs = _sacrebleu_pair()
    bleu, metric = _sacrebleu_metric()
    stats_b = np.array(bleu._extract_corpus_statistics(hyp_b, refs), dtype=float)
    stats_a = np.array(bleu._extract_corpus_statistics(hyp_a, refs), dtype=float)
    baseline = {"BLEU": (bleu._extract_corpus_statistics(hyp_b, refs), bleu.corpus_score(hyp_b, refs))}
    run = _paired_ar_test if test == "ar" else _paired_bs_test
    trials = 4000 if test == "ar" else 2000
    _, theirs = run(baseline, "a", hyp_a, refs, {"BLEU": bleu}, n_samples=trials, seed=12345)
    ours = compare_metric(metric, Sides([stats_a], [stats_b]), "ar" if test == "ar" else "bootstrap", trials, seed=0)
    assert ours.a == pytest.approx(bleu.corpus_score(hyp_a, refs).score, abs=1e-9)
    assert ours.b == pytest.approx(bleu.corpus_score(hyp_b, refs).score, abs=1e-9)
    assert 0.005 < theirs["BLEU"].p_value < 0.5  # a pair where the test is informative
    assert abs(ours.p - theirs["BLEU"].p_value) < 0.03
