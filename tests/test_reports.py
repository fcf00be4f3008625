"""`make report PAPER=...` (lodabench.results.reports) and the claim evaluator (lodabench.results.claims)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import ttest_ind_from_stats, ttest_rel

from lodabench.results import claims as C
from lodabench.results import reports
from lodabench.paths import REPO_ROOT
from runs_helpers import run_cli_here, run_dirs
from test_tables import SMOKE_OVERRIDES, write_run, write_smoke

PAPER_DIR = REPO_ROOT / "results" / "paper"


@pytest.fixture(scope="module")
def loda_report(tmp_path_factory) -> dict[str, Path]:
    """The LoDA report on the committed results (no runs on the paper's setting, the SmolLM2 grid);
    the paired tests and attribution sections are tested in test_report_paired.py."""
    out = tmp_path_factory.mktemp("reports")
    return reports.build("loda", out, out / "no-runs", reports.DEFAULT_GRIDS, PAPER_DIR, None, False)


def test_loda_report_lists_all_70_table1_cells(loda_report: dict[str, Path]) -> None:
    cells = pd.read_csv(loda_report["csv"], keep_default_na=False)
    own = cells[(cells.source == "paper setting") & (cells.file == "loda_table1_e2e.csv")]
    assert len(own) == 70 and len(own.drop_duplicates(["row", "paper_params", "metric"])) == 70
    assert set(own.ours) == {"missing"} and set(own.verdict) == {"missing"}
    assert own.command.str.startswith("to run: python -m lodabench -m ").all()
    loda = own[(own.method == "loda") & (own.metric == "BLEU")].iloc[0]
    assert loda.command == "to run: python -m lodabench -m experiment=e2e_loda seed=110,111,112"
    s_loda = own[(own.method == "s_loda") & (own.metric == "BLEU")].iloc[0]
    assert s_loda.command.endswith("experiment=e2e_s_loda_p04 seed=110,111,112")
    md = loda_report["md"].read_text()
    section = md.split("## Published cells on the paper's setting (112)")[1].split("\n## ")[0]
    assert sum(line.startswith("| Table 1 |") for line in section.splitlines()) == 70
    assert "Selection on test" in md and "repeats the LoDA row" in md
    assert loda_report["png"].stat().st_size > 10_000


def test_loda_report_reads_smollm2_grid(loda_report: dict[str, Path]) -> None:
    cells = pd.read_csv(loda_report["csv"], keep_default_na=False)
    grid = cells[(cells.source == "smollm2_e2e") & (cells.n > 0)]
    assert set(grid.verdict) == {reports.DIFFERENT_MODEL} and set(grid.our_model) == {"smollm2-135m"}
    lora = grid[(grid.method == "lora") & (grid.metric == "BLEU")].iloc[0]
    assert lora.n == 3 and lora.ours == "59.1 ± 1.9"                  # as results/smollm2_e2e's table
    assert lora.command.count("python -m lodabench ") == 3 and "trainer.lr=1e-3" in lora.command
    assert lora.checkpoint == "last (step 125)" and lora.run_dirs.count("results/smollm2_e2e/runs/") == 3
    claims = pd.read_csv(loda_report["claims"], keep_default_na=False)
    on_grid = claims[(claims.claim == "loda-e2e-all5") & claims.read_on.str.startswith("SmolLM2")].iloc[0]
    assert on_grid.verdict == "not supported" and "different model" in on_grid.read_on


def test_report_welch_verdict_on_paper_setting(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    bleu = [0.698, 0.701, 0.705]
    for seed, b in zip((110, 111, 112), bleu):
        write_run(runs, "loda", "experiment=e2e_loda", seed, "complete",
                  {"BLEU": b, "NIST": 8.8, "METEOR": 0.466, "ROUGE_L": 0.716, "CIDEr": 2.53}, params=394_752,
                  overrides=["experiment=e2e_loda", f"seed={seed}"])
    paths = reports.build("loda", tmp_path / "out", runs, (), PAPER_DIR)
    cells = pd.read_csv(paths["csv"], keep_default_na=False)
    row = cells[(cells.source == "paper setting") & (cells.method == "loda") & (cells.metric == "BLEU")
                & (cells.file == "loda_table1_e2e.csv")].iloc[0]
    s = pd.Series([100 * b for b in bleu])
    ref = ttest_ind_from_stats(s.mean(), s.std(ddof=1), 3, 70.2, 0.3, 3, equal_var=False)
    assert float(row.welch_p) == pytest.approx(ref.pvalue)
    assert row.verdict.startswith("not significant" if ref.pvalue >= 0.05 else "significant")
    assert "paper n=3 assumed" in row.verdict and float(row.delta) == pytest.approx(s.mean() - 70.2)
    assert row.command.split(" ; ")[0] == "python -m lodabench experiment=e2e_loda seed=110"
    assert row.ours_params == "394,752 (0.38M)" and row.paper_params == "0.38M"
    # NIST is the same on every seed: std 0 vs the paper's ±.03 still gives a Welch test.
    nist = cells[(cells.source == "paper setting") & (cells.method == "loda") & (cells.metric == "NIST")
                 & (cells.file == "loda_table1_e2e.csv")].iloc[0]
    assert "Welch p=" in nist.verdict


def _smoke_apart(paths: dict[str, Path], runs: Path) -> pd.DataFrame:
    """The report's cells of the smoke run: apart, never tested; and nothing of it on the paper's setting."""
    cells = pd.read_csv(paths["csv"], keep_default_na=False)
    smoke = cells[cells.run_dirs.str.contains("seed110") & (cells.source != "paper setting")]
    assert len(smoke) and set(smoke.source) == {"not the paper's setting"}
    assert smoke.verdict.str.startswith("not the paper's setting: ").all() and (smoke.welch_p == "").all()
    own = cells[(cells.source == "paper setting") & (cells.method == "loda") & (cells.metric == "BLEU")]
    assert not own.run_dirs.str.contains(str(runs.name) + "/e2e/gpt2-medium/loda/smoke").any()
    md = paths["md"].read_text()
    section = md.split("## Runs not on the paper's setting (1)")[1]
    assert "trainer.max_steps=2" in section and "| Table 1 | e2e | LoDA | BLEU | 70.2 ± 0.3 | 0.0 | 1 |" in section
    return smoke


def test_report_puts_smoke_run_apart_and_keeps_the_paper_setting(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_smoke(runs)
    for seed, bleu in zip((111, 112), (0.70, 0.71)):
        write_run(runs, "loda", "experiment=e2e_loda", seed, "complete", {"BLEU": bleu}, params=394_752,
                  overrides=["experiment=e2e_loda", f"seed={seed}"])
    paths = reports.build("loda", tmp_path / "out", runs, (), PAPER_DIR)
    smoke = _smoke_apart(paths, runs)
    counts = "total parameters 3,384,256 (gpt2-medium with this method: 355,217,920)"
    assert smoke.verdict.str.contains(counts, regex=False).all()
    cells = pd.read_csv(paths["csv"], keep_default_na=False)
    ours = cells[(cells.source == "paper setting") & (cells.method == "loda") & (cells.metric == "BLEU")
                 & (cells.file == "loda_table1_e2e.csv")].iloc[0]
    assert ours.n == 2 and ours.ours == "70.5 ± 0.7" and "Welch p=" in ours.verdict
    assert "1 have a run of ours on the paper's setting" in paths["md"].read_text().replace("112 published cells; ", "")
    claims = pd.read_csv(paths["claims"], keep_default_na=False)
    assert not claims.read_on.str.contains("not the paper").any()


@pytest.mark.slow
def test_real_smoke_run_is_not_the_papers_setting(tmp_path: Path, data_root: Path, gpt2_tokenizer_dir: Path) -> None:
    """A real 2-step run of a random-init tiny GPT-2 under experiment=e2e_loda (model=gpt2-medium)."""
    run_cli_here([*SMOKE_OVERRIDES, f"model.tokenizer={gpt2_tokenizer_dir}", "data.eval_split=dev", "decoding=greedy",
             "decoding.max_new_tokens=8", "trainer.progress=false", "decoding.progress=false"], tmp_path)
    (d,) = run_dirs(tmp_path)
    assert d.relative_to(tmp_path / "runs").parts[:3] == ("e2e", "gpt2-medium", "loda") and d.name == "seed110"
    paths = reports.build("loda", tmp_path / "out", tmp_path / "runs", (), PAPER_DIR)
    smoke = _smoke_apart(paths, tmp_path / "runs")
    assert smoke.verdict.str.contains("model.source='config'", regex=False).all()
    assert "1 have a run of ours" not in paths["md"].read_text()


def test_condlora_report_uses_grid_selection_runs(tmp_path: Path) -> None:
    """MiniLM's seed-110 runs are learning-rate selection runs (runs_summary kind 'select'): kept; the
    losing learning rates are not (they would be second rows)."""
    paths = reports.build("condlora", tmp_path, tmp_path / "no-runs", reports.DEFAULT_GRIDS, PAPER_DIR, None, False)
    cells = pd.read_csv(paths["csv"], keep_default_na=False)
    grid = cells[(cells.source == "minilm_glue") & (cells.n > 0)]
    assert set(grid.n) == {3} and len(grid) == len(grid.drop_duplicates(["row", "dataset", "metric"]))
    md = paths["md"].read_text()
    assert "## Table 3: phi(LoRA, CondLoRA) per layer, value module" in md
    claims = pd.read_csv(paths["claims"], keep_default_na=False)
    fewer = claims[(claims.claim == "condlora-fewer-params") & claims.read_on.str.contains("MiniLM")].iloc[0]
    assert fewer.verdict == "supported" and "ratio 1/6" in fewer.detail     # 6 layers, as 1/12 for 12


# ----------------------------------------------------------------------------------------------
# The claim evaluator on synthetic results


def entry(method: str, vals: dict[int, float], metric: str = "BLEU", params: int | None = 100,
          approx: str = "") -> C.Entry:
    return C.Entry(method, approx, params, {metric: vals})


def results(*entries: C.Entry, data: str = "e2e", loose: bool = False) -> C.Results:
    return C.Results("synthetic", {data: list(entries)}, loose_approx=loose)


BEATS = C.Claim("x", "q", "w", "beats", ("loda",), ("lora", "ft"), ("e2e",), ("BLEU",))


def test_beats_supported_and_not() -> None:
    good = results(entry("loda", {1: 71, 2: 72}), entry("lora", {1: 70, 2: 70.5}), entry("ft", {1: 69, 2: 69}))
    assert C.evaluate(BEATS, good).verdict == C.SUPPORTED
    tie = results(entry("loda", {1: 71, 2: 72}), entry("lora", {1: 71, 2: 72}), entry("ft", {1: 69, 2: 69}))
    out = C.evaluate(BEATS, tie)
    assert out.verdict == C.NOT_SUPPORTED and "not better: loda vs lora e2e BLEU: +0" in out.detail
    partial = results(entry("loda", {1: 71, 2: 72}), entry("lora", {1: 70, 2: 70}))
    out = C.evaluate(BEATS, partial)
    assert out.verdict == C.SUPPORTED and "[not run: ft on e2e]" in out.detail
    assert C.evaluate(BEATS, results(entry("lora", {1: 70}))).verdict == C.NOT_RUN


def test_beats_lower_is_better_and_at_least() -> None:
    ter = C.Claim("t", "q", "w", "beats", ("loda",), ("lora",), ("dart",), ("TER",))
    r = results(entry("loda", {1: 0.47}, "TER"), entry("lora", {1: 0.48}, "TER"), data="dart")
    assert C.evaluate(ter, r).verdict == C.SUPPORTED                       # lower TER is better
    several = C.Claim("s", "q", "w", "beats", ("lora",), ("ft", "prefix", "adapter_l"), ("e2e",), ("BLEU",), at_least=2)
    r = results(entry("lora", {1: 70}), entry("ft", {1: 69}), entry("prefix", {1: 71}), entry("adapter_l", {1: 66}))
    assert C.evaluate(several, r).verdict == C.SUPPORTED
    r = results(entry("lora", {1: 70}), entry("ft", {1: 69}), entry("prefix", {1: 71}), entry("adapter_l", {1: 72}))
    assert C.evaluate(several, r).verdict == C.NOT_SUPPORTED
    r = results(entry("lora", {1: 70}), entry("ft", {1: 71}))        # 1 of 3 run: 2 cannot be reached yet
    assert C.evaluate(several, r).verdict == C.NOT_RUN


def test_not_worse_uses_paired_test() -> None:
    claim = C.Claim("n", "q", "w", "not_worse", ("r_loda",), ("lora",), ("e2e",), ("BLEU",))
    a, b = {1: 69.0, 2: 70.5, 3: 69.6}, {1: 69.5, 2: 70.2, 3: 70.1}     # lower on average, noisy
    out = C.evaluate(claim, results(entry("r_loda", a), entry("lora", b)))
    p = ttest_rel(list(a.values()), list(b.values())).pvalue
    assert p >= 0.05 and out.verdict == C.SUPPORTED and f"paired p={p:.3g}" in out.detail
    a = {1: 60.0, 2: 60.4, 3: 60.1}                                       # clearly lower
    assert C.evaluate(claim, results(entry("r_loda", a), entry("lora", b))).verdict == C.NOT_SUPPORTED
    unseeded = C.Results("pub", {"e2e": [C.Entry("r_loda", "", 1, {"BLEU": {None: 69.0}}, False),
                                         C.Entry("lora", "", 1, {"BLEU": {None: 69.5}}, False)]})
    assert C.evaluate(claim, unseeded).verdict == C.NOT_RUN                # lower mean, no test possible


def test_on_par_and_params() -> None:
    claim = C.Claim("p", "q", "w", "on_par", ("condlora",), ("lora",), ("sst2", "mrpc"), alpha=0.01)
    same = results(entry("condlora", {1: 90.0, 2: 91.0, 3: 90.4}, "accuracy"),
                   entry("lora", {1: 90.2, 2: 90.7, 3: 90.6}, "accuracy"), data="sst2")
    out = C.evaluate(claim, same)
    assert out.verdict == C.SUPPORTED and "[not run: condlora on mrpc]" in out.detail
    far = results(entry("condlora", {1: 80.0, 2: 80.1, 3: 80.3}, "accuracy"),
                  entry("lora", {1: 90.0, 2: 90.2, 3: 90.3}, "accuracy"), data="sst2")
    assert C.evaluate(claim, far).verdict == C.NOT_SUPPORTED
    fewer = C.Claim("f", "q", "w", "fewer_params", ("condlora",), ("lora",), ("sst2",))
    r = results(entry("condlora", {1: 1}, params=6_144), entry("lora", {1: 1}, params=36_864), data="sst2")
    out = C.evaluate(fewer, r)
    assert out.verdict == C.SUPPORTED and "ratio 1/6" in out.detail
    r = results(entry("condlora", {1: 1}, params=40_000), entry("lora", {1: 1}, params=36_864), data="sst2")
    assert C.evaluate(fewer, r).verdict == C.NOT_SUPPORTED


def test_subspace_claim() -> None:
    claim = C.Claim("s", "q", "w", "subspace_above_random")
    df = pd.DataFrame({"slot": "v", "kind": ["A", "B", "dW"] * 2, "layer": [0, 0, 0, 1, 1, 1],
                       "phi": [0.05, 0.04, 0.04, 0.03, 0.05, 0.05], "phi_random": 0.01})
    assert C.evaluate(claim, C.Results("r", subspace=df)).verdict == C.SUPPORTED
    assert C.evaluate(claim, C.Results("r", subspace=df.assign(phi=0.005))).verdict == C.NOT_SUPPORTED
    assert C.evaluate(claim, C.Results("r")).verdict == C.NOT_RUN


def test_approx_matching() -> None:
    claim = C.Claim("a", "q", "w", "beats", ("s_loda@p=0.4",), ("lora",), ("e2e",), ("BLEU",))
    other = [entry("s_loda", {1: 71}, approx="p=0.5"), entry("lora", {1: 70})]
    assert C.evaluate(claim, results(*other)).verdict == C.NOT_RUN          # the paper's model: exact Approx
    out = C.evaluate(claim, results(*[entry("s_loda", {1: 71}, approx="p=0.5"), entry("lora", {1: 70})], loose=True))
    assert out.verdict == C.SUPPORTED                                       # another model: any Approx


def test_pareto_front() -> None:
    pts = [(1e5, 70.0), (2e5, 69.0), (3e5, 71.0), (1e8, 71.0), (5e4, 60.0)]
    assert reports.pareto(pts) == [(5e4, 60.0), (1e5, 70.0), (3e5, 71.0)]


def _norm(text: str) -> str:
    """Whitespace collapsed; the PDF extraction's alt-text of inline math dropped ("p𝑝pitalic_p-values"
    -> "p-values"), so a quote is compared with the words the paper prints."""
    return " ".join(re.sub(r"[\U0001D400-\U0001D7FF]\S*?italic_\w+", "", text).split())


def test_claim_quotes_are_in_the_papers_text(shared: Path) -> None:
    norm = _norm
    for paper, claims in C.CLAIMS.items():
        for claim in claims:
            if claim.source_file is None:
                assert "not in ../shared/papers" in claim.where, claim.id
                continue
            text = (shared / "papers" / claim.source_file)
            if not text.is_file():
                pytest.skip(f"{text} not found")
            assert norm(claim.quote) in norm(text.read_text(encoding="utf-8")), (paper, claim.id)


def test_published_counts() -> None:
    own = {"params": "0.38M", "file": "loda_table1_e2e.csv", "row_label": "LoDA"}
    copied = {"params": "354.92M", "file": "loda_table1_e2e.csv", "row_label": "FT*"}
    assert reports.published_count(own) == pytest.approx(0.38 * 2 ** 20)
    assert reports.published_count(copied) == pytest.approx(354.92e6)
    assert reports.published_count({"params": "294,912", "file": "condlora_table4_speed.csv"}) == 294_912
    assert math.isclose(reports.published_count({"params": "0.35M", "file": "lora_table3_e2e.csv"}), 0.35e6)


def test_cli_writes_the_four_files(tmp_path: Path, capsys) -> None:
    assert reports.main(["--paper", "condlora", "--out", str(tmp_path), "--runs-dir", str(tmp_path / "none"),
                         "--grid", str(REPO_ROOT / "results" / "minilm_glue"), "--no-paired", "--no-attribution"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["condlora.csv", "condlora.html", "condlora.md",
                                                         "condlora.png", "condlora_claims.csv"]
    assert "# Reproduction report: A Single Linear Layer" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        reports.main(["--paper", "dora"])
