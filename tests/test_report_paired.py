"""Issue #29 in the reports and tables: Holm against hand-computed values, TOST against its
definition, per-metric compare margins, and the paired/attribution sections on the committed runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from lodabench.errors import ConfigError, DataError
from lodabench.paths import REPO_ROOT
from lodabench.results import report_paired as RP
from lodabench.results import reports
from lodabench.results.compare import compare_family, compare_runs, main as compare_main, parse_margins
from lodabench.results.paired import tost
from lodabench.results.paper import load_paper
from lodabench.results.report_cells import grid_rows
from lodabench.results.stats import holm

PAPER_DIR = REPO_ROOT / "results" / "paper"
GLUE = REPO_ROOT / "results/minilm_glue"
E2E = REPO_ROOT / "results/smollm2_e2e"
LORA_E2E = [E2E / f"runs/e2e/smollm2-135m/lora/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]
LODA_E2E = [E2E / f"runs/e2e/smollm2-135m/loda/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]


# --- Holm ----------------------------------------------------------------------------------------------


def test_holm_matches_the_step_down_values_computed_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(1*0.04, 0.06)=0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # statsmodels multipletests([0.2, 0.5], method="holm") -> [0.4, 0.5]; NaN is not in the family
    got = holm([math.nan, 0.2, 0.5])
    assert math.isnan(got[0]) and got[1:] == pytest.approx([0.4, 0.5])
    assert holm([0.6, 0.7]) == [1.0, 1.0] and holm([]) == [] and holm([0.03]) == [0.03]


def test_holm_is_monotone_and_between_raw_and_bonferroni() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        p = rng.random(rng.integers(1, 12)) ** 3
        q = np.array(holm(list(p)))
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(q[order]) >= -1e-15)                       # same order as the raw p
        assert np.all(q >= p - 1e-15) and np.all(q <= np.minimum(1, len(p) * p) + 1e-15)


# --- TOST ---------------------------------------------------------------------------------------------


def test_tost_is_the_larger_of_the_two_one_sided_bootstrap_p_values() -> None:
    deltas = np.array([0.0, 0.25, 0.5, 1.0, 1.25])                   # binary fractions: exact ties
    d, m = 0.25, 0.5
    z = deltas - d                                                     # the replicates shifted to the null
    p_low = (1 + np.sum(z >= d + m)) / 6                               # H0: delta <= -m (ties count)
    p_high = (1 + np.sum(z <= d - m)) / 6                              # H0: delta >= +m
    assert (p_low, p_high) == (3 / 6, 2 / 6)
    assert tost(deltas, d, m) == pytest.approx(max(p_low, p_high))


def test_tost_agrees_with_the_normal_two_one_sided_tests() -> None:
    rng = np.random.default_rng(0)
    d, s, m = 0.2, 0.25, 0.7
    deltas = rng.normal(d, s, 400_000)
    expected = max(norm.sf((d + m) / s), norm.sf((m - d) / s))          # Schuirmann with known s
    assert tost(deltas, d, m) == pytest.approx(expected, abs=0.002)
    assert tost(deltas, d, m) < 0.05 and not tost(deltas, d, 0.3) < 0.05


# --- compare: per-metric margins ----------------------------------------------------------------------


def test_parse_margins_global_and_per_metric() -> None:
    assert parse_margins(None) is None and parse_margins(["0.5"]) == 0.5
    assert parse_margins(["BLEU=0.5", "ROUGE_L=0.01"]) == {"BLEU": 0.5, "ROUGE_L": 0.01}
    for bad in (["0.5", "0.2"], ["0.5", "BLEU=0.2"], ["BLEU=x"]):
        with pytest.raises(ConfigError):
            parse_margins(bad)


def test_compare_per_metric_margin_tests_only_the_named_metric() -> None:
    out = compare_runs([str(LODA_E2E[0])], [str(LORA_E2E[0])], trials=300, margin={"BLEU": 0.5},
                       metrics=["BLEU", "NIST"])
    assert out["BLEU"]["margin"] == 0.5 and "p_tost" in out["BLEU"] and "margin" not in out["NIST"]
    assert out["BLEU"]["equivalent"] is True                            # |ci| << 0.5 on the 0-1 scale


def test_compare_unknown_margin_metric_lists_the_valid_names(capsys) -> None:
    with pytest.raises(ConfigError) as err:
        compare_main(["--a", str(LODA_E2E[0]), "--b", str(LORA_E2E[0]), "--margin", "BLUE=0.5", "--json"])
    assert "BLUE" in str(err.value) and "BLEU" in str(err.value) and "ROUGE_L" in str(err.value)


def test_compare_family_equals_pairwise_compare() -> None:
    fam = compare_family([str(d) for d in LORA_E2E], {"loda": [str(d) for d in LODA_E2E]}, trials=300,
                         metrics=["BLEU"])["loda"]["BLEU"]
    one = compare_runs([str(d) for d in LODA_E2E], [str(d) for d in LORA_E2E], trials=300, metrics=["BLEU"])["BLEU"]
    assert fam == one


# --- the families on the committed runs ---------------------------------------------------------------


def _recorded_mean(dirs, metric: str) -> float:
    return float(np.mean([json.loads((Path(d) / "metrics.json").read_text())[metric] for d in dirs]))


def _sst2_family(trials: int = 400) -> list[dict]:
    rows = [r for r in grid_rows(GLUE / "runs", GLUE / "runs_summary.csv") if r.data in ("sst2", "mrpc")]
    return RP.family_records(load_paper(PAPER_DIR), "condlora_table2_glue.csv", rows, GLUE / "runs", "lora",
                             RP.PairedSettings(trials=trials), RP.load_margins(PAPER_DIR), "minilm-l6")


def test_family_on_minilm_sst2_mrpc_numbers_and_holm() -> None:
    recs = _sst2_family()
    tested = [r for r in recs if math.isfinite(r["p"])]
    assert len(tested) == len(recs) == 16 and {r["family_m"] for r in recs} == {16}   # 8 rows x 2 tasks
    assert [r["p_holm"] for r in recs] == pytest.approx(holm([r["p"] for r in recs]))
    cond = next(r for r in recs if r["dataset"] == "sst2" and r["row"].startswith("CondLoRA"))
    runs = GLUE / "runs/sst2/minilm-l6"
    ours = _recorded_mean([runs / f"condlora/experiment=minilm_glue_sst2,trainer.lr=0.002/seed{s}" for s in (110, 111, 112)],
                          "accuracy")
    base = _recorded_mean([runs / f"lora/experiment=minilm_glue_sst2,trainer.lr=0.002/seed{s}" for s in (110, 111, 112)],
                          "accuracy")
    assert cond["ours"] == pytest.approx(ours) and cond["baseline_value"] == pytest.approx(base)
    assert cond["delta"] == pytest.approx(ours - base) and cond["delta"] == pytest.approx(-6.498, abs=1e-3)
    assert cond["ci_lo"] < cond["delta"] < cond["ci_hi"] < 0
    assert cond["margin"] == 0.2 and "lora_table2_glue.csv" in cond["margin_source"] and not cond["equivalent"]
    assert (cond["trials"], cond["seed"], cond["test"]) == (400, 0, "bootstrap")
    assert _sst2_family() == recs                                       # fixed seed: the same numbers again


def test_reading_rules() -> None:
    base = {"delta": -1.0, "margin": 0.5}
    assert RP.reading({**base, "equivalent": True}, 0.01).startswith("on par")
    assert RP.reading({**base, "equivalent": False}, 0.01) == "differs (worse)"
    assert RP.reading({**base, "equivalent": False}, 0.2).startswith("undecided (not shown within ±0.5")
    assert RP.reading({"delta": 1.0}, 0.2) == "undecided (no margin set)" and RP.reading(base, math.nan) == ""


def test_margins_cite_the_papers_printed_spread() -> None:
    """Each margin is the ± the cited published row prints for that dataset and metric."""
    paper = load_paper(PAPER_DIR)
    margins = RP.load_margins(PAPER_DIR)
    assert len(margins) == 13
    for (data, metric), m in margins.items():
        file, label = m.source.split(", ")[0], m.source.split(", ")[1].split(" row")[0]
        hit = paper[(paper.file == file) & (paper.dataset == data) & (paper.metric == metric) & (paper.row_label == label)]
        assert len(hit) == 1 and float(hit.pm.iloc[0]) == m.value, (data, metric)


def test_bad_margins_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "margins").mkdir()
    (tmp_path / "margins" / "equivalence.csv").write_text("dataset,metric,margin,source\ne2e,BLEU,0,\n")
    with pytest.raises(DataError, match="equivalence.csv:2"):
        RP.load_margins(tmp_path)


def test_cells_without_outputs_say_so() -> None:
    cells = [{"source": "paper setting", "row_dir": "", "dataset": "e2e", "metric": "BLEU", "method": "loda", "n": 0}]
    RP.annotate(cells, [], "lora")
    assert cells[0]["paired"] == RP.NO_OUTPUTS_PUBLISHED


def test_tables_write_paired_files_only_where_a_comparison_applies(tmp_path: Path) -> None:
    from lodabench.results.runs import load_runs

    rows = [r for r in load_runs(GLUE / "runs") if r.data == "rte"]
    out = RP.paired_tables(rows, GLUE / "runs", tmp_path, PAPER_DIR, RP.PairedSettings(trials=200))
    assert list(out) == ["paired__glue__minilm-l6"]
    df = pd.read_csv(out["paired__glue__minilm-l6"][0])
    assert set(df.dataset) == {"rte"} and (df.family_m == len(df)).all() and (df.trials == 200).all()
    assert RP.paired_tables([], GLUE / "runs", tmp_path / "none", PAPER_DIR, RP.PairedSettings()) == {}


# --- the whole report -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_condlora_report_prints_paired_tests_holm_tost_and_attribution(tmp_path: Path) -> None:
    paths = reports.build("condlora", tmp_path, tmp_path / "no-runs", reports.DEFAULT_GRIDS, PAPER_DIR,
                          RP.PairedSettings(), True)   # 2000 trials: Holm over m=40 can reach 0.02
    md = paths["md"].read_text()
    paired = pd.read_csv(paths["paired"])
    assert len(paired) == 40 and (paired.family_m == 40).all() and set(paired.source) == {"minilm_glue"}
    cond = paired[(paired.dataset == "mrpc") & paired.row.str.startswith("CondLoRA")].iloc[0]
    assert cond.delta == pytest.approx(-6.454, abs=1e-3) and cond.ci_hi < 0 and cond.reading == "differs (worse)"
    assert "On all-MiniLM-L6-v2 (minilm_glue); Holm families: Table 2 (m=40)." in md
    cells = pd.read_csv(paths["csv"], keep_default_na=False)
    assert set(cells[(cells.source == "paper setting") & (cells.method == "condlora")].paired) == {RP.NO_OUTPUTS_PUBLISHED}
    claims = pd.read_csv(paths["claims"], keep_default_na=False)
    on_par = claims[(claims.claim == "condlora-on-par") & claims.read_on.str.contains("MiniLM")].iloc[0]
    assert on_par.verdict == "not supported" and "on par by TOST" in on_par.detail and "±0.2" in on_par.detail
    attribution = pd.read_csv(paths["attribution"])
    sst2 = attribution[(attribution.dataset == "sst2") & attribution.row.str.startswith("LoRA")]
    assert list(sst2.factor) == ["checkpoint", "reference text", "scorer", "aggregation"]
    assert sst2.gap.iloc[0] == pytest.approx(81.728 - 93.7, abs=1e-3)   # ours (3 seeds) - CondLoRA Table 2
    assert "one after another in this order: checkpoint → reference text → scorer → aggregation" in md
    assert "interaction" in md and "remainder" in md


# --- claims: "on par" by TOST where a seed x item test exists ---------------------------------------------


def _claims_results(item_test: dict) -> "C.Results":
    from lodabench.results import claims as C

    a = C.Entry("condlora", "", 10, {"accuracy": {1: 80.0, 2: 81.0}}, key="row/a")
    b = C.Entry("lora", "", 20, {"accuracy": {1: 80.5, 2: 81.4}}, key="row/b")
    res = C.Results("grid", {"sst2": [a, b]})
    res.paired = {("row/a", "row/b", "sst2", "accuracy"): item_test}
    return res


@pytest.mark.parametrize("equivalent, p_holm, on_par, not_worse", [
    (True, 0.9, "supported", "supported"),          # lower, but shown within the margin
    (False, 0.9, "not supported", "not supported"),  # lower and not shown on par: the claim is not supported
    (False, 0.001, "not supported", "not supported"),
])
def test_claims_read_on_par_by_tost(equivalent, p_holm, on_par, not_worse) -> None:
    from lodabench.results import claims as C

    test = {"p": 0.5, "p_holm": p_holm, "family_m": 3, "margin": 0.7, "margin_source": "SRC", "p_tost": 0.01,
            "equivalent": equivalent, "delta": -0.45}
    res = _claims_results(test)
    par = C.evaluate(C.Claim("x", "q", "w", "on_par", ("condlora",), ("lora",), ("sst2",), alpha=0.01), res)
    worse = C.evaluate(C.Claim("y", "q", "w", "not_worse", ("condlora",), ("lora",), ("sst2",)), res)
    assert (par.verdict, worse.verdict) == (on_par, not_worse)
    assert "by TOST" in par.detail and "±0.7 from SRC" in par.detail and "Holm p" in worse.detail


def test_rows_that_cannot_be_compared_say_why(monkeypatch) -> None:
    import lodabench.results.compare as compare

    def refuse(*args, **kwargs):
        raise ConfigError("compare needs runs of one task scored one way")

    monkeypatch.setattr(compare, "compare_family", refuse)
    recs = _sst2_family(trials=50)
    assert recs and all(math.isnan(r["p"]) and r["note"].startswith("not comparable: compare needs") for r in recs)
    assert {r["family_m"] for r in recs} == {0} and RP.cell_text(recs[0]) == recs[0]["note"]
