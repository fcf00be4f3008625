"""lodabench plan-seeds against the closed-form power of a two-sample mean difference and by simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, ttest_ind

from lodabench.cli import main as cli_main
from lodabench.errors import ConfigError
from lodabench.results.seed_plan import (Components, components, n_closed_form, plan, power_normal)

REPO = Path(__file__).resolve().parent.parent
GLUE = REPO / "results/minilm_glue/runs/sst2/minilm-l6"
CONDLORA = [GLUE / f"condlora/experiment=minilm_glue_sst2,trainer.lr=0.002/seed{s}" for s in (110, 111, 112)]
LODA = [GLUE / f"loda/experiment=minilm_glue_sst2,trainer.lr=0.002/seed{s}" for s in (110, 111, 112)]
E2E = REPO / "results/smollm2_e2e/runs/e2e/smollm2-135m"
E2E_LORA = [E2E / f"lora/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]


def _comp(sigma2_a=1.0, sigma2_b=1.0, tau2=None) -> Components:
    return Components("m", sigma2_a, sigma2_b, tau2, 3, 3, 100)


def test_power_at_the_textbook_n_is_the_target():
    """delta = (z_{1-a/2} + z_power) * se gives the target power up to the other tail's sliver."""
    se = 0.7
    delta = (norm.ppf(0.975) + norm.ppf(0.8)) * se
    assert power_normal(delta, se, 0.05) == pytest.approx(0.8 + norm.cdf(-delta / se - norm.ppf(0.975)), abs=1e-12)
    assert power_normal(0.0, se, 0.05) == pytest.approx(0.05, abs=1e-12)


@pytest.mark.parametrize("sig_a,sig_b,delta,power,alpha", [(1.0, 1.0, 1.0, 0.8, 0.05), (0.5, 2.0, 0.7, 0.9, 0.05),
                                                           (0.02, 0.03, 0.01, 0.8, 0.01)])
def test_normal_n_is_the_closed_form_rounded_up(sig_a, sig_b, delta, power, alpha):
    p = plan(_comp(sig_a ** 2, sig_b ** 2), delta, power, alpha)
    closed = n_closed_form(delta, sig_a ** 2 + sig_b ** 2, 0.0, power, alpha)
    assert p.n_seeds_normal == math.ceil(closed)
    assert p.n_seeds >= p.n_seeds_normal  # the t-test pays for estimating the variance


def test_item_term_adds_to_the_closed_form_and_can_make_it_unreachable():
    tau2 = 0.1
    p = plan(_comp(1.0, 1.0, tau2), 1.0)
    assert p.n_seeds_normal == math.ceil(n_closed_form(1.0, 2.0, tau2, 0.8, 0.05))
    assert p.n_seeds_this_test_set < p.n_seeds
    k = (norm.ppf(0.975) + norm.ppf(0.8)) ** 2
    stuck = plan(_comp(1.0, 1.0, 1.0 / k * 1.01), 1.0)  # the item sd alone exceeds delta / (z_a + z_b)
    assert stuck.n_seeds is None and stuck.n_seeds_normal is None and stuck.n_seeds_this_test_set is not None


@pytest.mark.parametrize("sig_a,sig_b,delta", [(1.0, 1.0, 1.5), (0.6, 1.2, 1.0), (1.0, 1.0, 0.6)])
def test_simulated_welch_power_at_the_planned_n(sig_a, sig_b, delta):
    """Draw n seeds per system from the assumed model; Welch's test rejects in ~80 % of the trials."""
    p = plan(_comp(sig_a ** 2, sig_b ** 2), delta)
    rng = np.random.default_rng(0)
    reps = 8000
    a = rng.normal(delta, sig_a, (reps, p.n_seeds))
    b = rng.normal(0.0, sig_b, (reps, p.n_seeds))
    rejected = ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05
    assert rejected.mean() == pytest.approx(p.power_at_n, abs=0.02)  # Welch's df is at most 2n - 2
    assert 0.8 <= p.power_at_n < 0.8 + 0.06 * 10 / p.n_seeds  # the least such n: one seed fewer falls short
    fewer = ttest_ind(a[:, :-1], b[:, :-1], axis=1, equal_var=False).pvalue < 0.05
    assert fewer.mean() < 0.8 + 0.02


def test_simulated_power_with_the_item_term():
    """The test set is drawn too: its paired difference moves D_hat by N(0, tau2) whatever n is."""
    c = _comp(1.0, 1.0, 0.05)
    p = plan(c, 1.0)
    rng = np.random.default_rng(1)
    reps, n = 20000, p.n_seeds_normal
    d_hat = 1.0 + rng.normal(0, math.sqrt(c.tau2), reps) + rng.normal(0, 1, (reps, n)).mean(1) \
        - rng.normal(0, 1, (reps, n)).mean(1)
    se = math.sqrt(2.0 / n + c.tau2)
    assert (np.abs(d_hat / se) > norm.ppf(0.975)).mean() == pytest.approx(0.8, abs=0.02)


def test_components_from_committed_runs():
    comps = components([str(d) for d in CONDLORA], [str(d) for d in LODA], ["accuracy"], trials=4000)
    c = comps["accuracy"]
    rec = [json.loads((d / "metrics.json").read_text())["accuracy"] for d in CONDLORA]
    assert c.sigma2_a == pytest.approx(np.var(rec, ddof=1), rel=1e-9)
    # accuracy is a mean: tau2 is the variance of the mean per-item difference of the seed means
    correct = [[json.loads(x) for x in (d / "predictions.jsonl").read_text().splitlines()] for d in CONDLORA + LODA]
    hits = np.array([[100.0 * (r["prediction"] == r["label"]) for r in sorted(rows, key=lambda r: r["i"])]
                     for rows in correct])
    diff = hits[:3].mean(0) - hits[3:].mean(0)
    assert c.tau2 == pytest.approx(np.var(diff) / len(diff), rel=0.08)
    assert (c.seeds_a, c.seeds_b, c.n_items) == (3, 3, 872)


def test_one_configuration_assumes_its_variance_for_the_other(capsys):
    assert cli_main(["plan-seeds", "--runs", *map(str, E2E_LORA), "--delta", "0.02", "--metric", "BLEU", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["BLEU"]
    assert out["components"]["sigma2_b"] == out["components"]["sigma2_a"] and out["components"]["tau2"] is None
    assert "this test set only" in out["model"] and out["n_seeds"] >= 2


def test_clear_errors(capsys):
    assert cli_main(["plan-seeds", "--runs", str(E2E_LORA[0]), "--delta", "0.02", "--metric", "BLEU"]) == 2
    assert "at least 2 runs" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--delta"):
        plan(_comp(), 0.0)
    with pytest.raises(ConfigError, match="--power"):
        plan(_comp(), 1.0, power=1.5)
