"""`lodabench tables` on fabricated run records: rows, mean/std by hand, missing, failed, n, LaTeX, t-test."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import ttest_ind_from_stats, ttest_rel

from lodabench.results import stats, tables
from lodabench.errors import LodabenchError
from lodabench.models.pretrained import read_model_conf
from lodabench.paths import REPO_ROOT

from conftest import IN_CI

E2E = {"BLEU": 0.0, "NIST": 0.0, "METEOR": 0.0, "ROUGE_L": 0.0, "CIDEr": 0.0}


# GPT-2 medium's own parameters (results/params/param_counts.csv, its `ft` row): with an adapter
# method the record's total is this plus the adapter's trainable count.
GPT2_MEDIUM = 354_823_168


def write_run(runs: Path, method: str, slug: str, seed: int, status: str, metrics: dict | None = None,
              method_cfg: dict | None = None, params: int = 393_216, overrides: list[str] | None = None,
              data: str = "e2e", model: str = "gpt2-medium", error: str | None = None,
              config: dict | None = None, total: int | None = None) -> Path:
    """A record.json as a run on the paper's setting writes it (full budget, conf/model/<model>.yaml,
    GPT-2 medium's counts); ``config`` updates its config groups (e.g. a smoke run's limits)."""
    d = runs / data / model / method / slug / f"seed{seed}"
    d.mkdir(parents=True)
    known = (REPO_ROOT / "conf" / "model" / f"{model}.yaml").is_file()
    cfg = {"seed": seed, "data": {"name": data, "max_train_examples": None, "max_eval_items": None},
           "model": read_model_conf(model) if known else {"name": model},
           "trainer": {"epochs": 5, "max_steps": None, "max_dev_batches": None},
           "method": {"name": method, "r": 4, **(method_cfg or {})}}
    for group, values in (config or {}).items():
        cfg[group] = {**cfg.get(group, {}), **values}
    total = total if total is not None else params + (GPT2_MEDIUM if model == "gpt2-medium" else 0)
    rec = {"status": status, "config": cfg, "seed": seed, "wall_time_s": 1.0, "peak_memory": {"cpu_rss_mb": 1.0},
           "trainable_params": {"trainable": params, "trainable_without_head": params, "head": 0, "total": total}}
    if metrics is not None:
        rec["metrics"] = metrics
    if error:
        rec["error"] = error
    (d / "record.json").write_text(json.dumps(rec))
    if overrides is not None:
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return d


def fabricate(root: Path) -> Path:
    """2 methods x 2 seeds, a failed seed, a missing cell, an all-failed row, a 2-point rank sweep."""
    runs = root / "runs"
    # LoRA: two complete seeds with every metric (the hand-computed row).
    write_run(runs, "lora", "experiment=e2e_lora", 110, "complete",
              {"BLEU": 0.700, "NIST": 8.80, "METEOR": 0.460, "ROUGE_L": 0.710, "CIDEr": 2.50},
              overrides=["experiment=e2e_lora", "seed=110"])
    write_run(runs, "lora", "experiment=e2e_lora", 111, "complete",
              {"BLEU": 0.710, "NIST": 8.90, "METEOR": 0.470, "ROUGE_L": 0.720, "CIDEr": 2.60},
              overrides=["experiment=e2e_lora", "seed=111"])
    # LoDA: two complete seeds, CIDEr in neither (a missing cell), NIST in one only (n=1), seed 112 failed.
    write_run(runs, "loda", "experiment=e2e_loda", 110, "complete",
              {"BLEU": 0.705, "NIST": 8.70, "METEOR": 0.465, "ROUGE_L": 0.715}, params=394_752)
    write_run(runs, "loda", "experiment=e2e_loda", 111, "complete",
              {"BLEU": 0.718, "METEOR": 0.475, "ROUGE_L": 0.725}, params=394_752)
    write_run(runs, "loda", "experiment=e2e_loda", 112, "failed", None, params=394_752,
              error="TrainingDiverged: loss is nan at step 7")
    # LoDA+: its only run failed.
    write_run(runs, "loda_plus", "experiment=e2e_loda_plus", 110, "failed", None, error="OSError: disk full")
    # R-LoDA at two approximation ranks (one seed each) -> a sweep plot.
    for rank, bleu in ((300, 0.68), (400, 0.69)):
        write_run(runs, "r_loda", f"experiment=e2e_r_loda_r{rank}", 110, "complete",
                  {**E2E, "BLEU": bleu}, method_cfg={"rank": rank})
    return runs


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    return fabricate(tmp_path)


def table1(runs: Path, out: Path, **kw) -> tuple[pd.DataFrame, str, str]:
    tables.build(runs, out, None, plots=kw.get("plots", False))
    stem = out / "table1_e2e__gpt2-medium"
    df = pd.read_csv(stem.with_suffix(".csv"), keep_default_na=False)
    return df, stem.with_suffix(".md").read_text(), stem.with_suffix(".tex").read_text()


def test_rows_and_order(runs: Path, tmp_path: Path) -> None:
    df, md, tex = table1(runs, tmp_path / "out")
    assert list(df["label"]) == ["LoRA", "LoDA", "LoDA+", "R-LoDA", "R-LoDA"]
    assert list(df["approx"]) == ["–", "–", "–", "R=300", "R=400"]
    assert list(df["n"]) == [2, 2, 0, 1, 1]
    assert df.loc[0, "params_paper"] == "0.38M"       # 393,216 / 2^20 = 0.375 -> 0.38M (LoDA Table 1)
    for head in ("Method", "Approx W_proj", "# Trainable Parameters", "BLEU", "NIST", "MET", "ROUGE-L", "CIDEr"):
        assert head in md.splitlines()[2]


def test_mean_std_by_hand(runs: Path, tmp_path: Path) -> None:
    df, md, tex = table1(runs, tmp_path / "out")
    lora = df[df.label == "LoRA"].iloc[0]
    # BLEU x100: 70.0 and 71.0 -> mean 70.5, sample std sqrt(((0.5)^2 + (0.5)^2) / 1) = 0.7071
    assert float(lora["BLEU_mean"]) == pytest.approx(70.5)
    assert float(lora["BLEU_std"]) == pytest.approx(math.sqrt(0.5))
    assert float(lora["NIST_mean"]) == pytest.approx(8.85)            # raw scale
    assert float(lora["NIST_std"]) == pytest.approx(math.sqrt(0.005))
    assert float(lora["CIDEr_mean"]) == pytest.approx(2.55)
    assert lora["BLEU"] == "70.5 ± 0.7"
    assert lora["NIST"] == "8.85 ± 0.07"
    assert "$70.5_{\\pm 0.7}$" in tex
    assert "| LoRA | – | 0.38M | 2 | 70.5 ± 0.7 | 8.85 ± 0.07 |" in md


def test_missing_failed_and_n(runs: Path, tmp_path: Path) -> None:
    df, md, tex = table1(runs, tmp_path / "out")
    loda = df[df.label == "LoDA"].iloc[0]
    assert loda["CIDEr"] == "missing" and loda["CIDEr_n"] == 0 and loda["CIDEr_mean"] == ""  # never 0
    assert loda["NIST"] == "8.70 (n=1)"                  # the cell states its own n
    assert loda["flag"] == "†" and "1 failed (seeds 112: TrainingDiverged" in loda["status"]
    plus = df[df.label == "LoDA+"].iloc[0]
    assert plus["BLEU"] == "failed†" and plus["n"] == 0
    assert "| LoDA† | – | 0.38M | 2† |" in md
    assert "- † LoDA: 2 complete (seeds 110,111), 1 failed (seeds 112: TrainingDiverged" in md
    assert "- † LoDA+: 1 failed (seeds 110: OSError: disk full)" in md
    assert r"\textit{missing}" in tex and r"\textit{failed}\textsuperscript{\dag}" in tex
    assert "ddof=1" in md


def _pdflatex(required: bool) -> str | None:
    """pdflatex, or a skip (``required``) / None outside CI; under CI=true its absence fails:
    .ci/run installs it (``make install-latex``: texlive-latex-base + texlive-latex-recommended)."""
    engine = shutil.which("pdflatex")
    if engine is None and IN_CI:
        pytest.fail("pdflatex not installed under CI=true. Fix: make install-latex (.ci/run runs it)")
    if engine is None and required:
        pytest.skip("pdflatex not installed (make install-latex); the LaTeX text is checked by the other tests")
    return engine


def test_latex_compiles(runs: Path, tmp_path: Path) -> None:
    _, _, tex = table1(runs, tmp_path / "out")
    engine = _pdflatex(required=True)
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n"
                   "\\begin{document}\n" + tex + "\\end{document}\n")
    res = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]


def test_compare_with_published(runs: Path, tmp_path: Path) -> None:
    paper = tmp_path / "paper"
    paper.mkdir()
    pd.DataFrame([
        {"paper": "P", "table": "Table 3", "source": "s", "dataset": "e2e", "model": "gpt2-medium",
         "method": "lora", "approx": "", "row_label": "GPT-2 M (LoRA)", "params": "0.35M", "metric": "BLEU",
         "value": 70.4, "pm": 0.1},
        {"paper": "P", "table": "Table 3", "source": "s", "dataset": "e2e", "model": "gpt2-medium",
         "method": "prefix", "approx": "", "row_label": "GPT-2 M (PreLayer)", "params": "0.35M",
         "metric": "BLEU", "value": 69.7, "pm": ""},
    ]).to_csv(paper / "p.csv", index=False)
    out = tmp_path / "out"
    tables.build(runs, out, paper, plots=False)
    cmp = pd.read_csv(out / "compare.csv", keep_default_na=False)
    lora = cmp[cmp.row_label == "GPT-2 M (LoRA)"].iloc[0]
    assert float(lora["diff"]) == pytest.approx(0.1)
    assert cmp[cmp.row_label == "GPT-2 M (PreLayer)"].iloc[0]["ours"] == "missing"
    # Welch verdict from the summary statistics: ours 70.5 ± 0.707 (n=2) vs 70.4 ± 0.1 (n=3 assumed).
    ref = ttest_ind_from_stats(70.5, math.sqrt(0.5), 2, 70.4, 0.1, 3, equal_var=False)
    assert float(lora["welch_p"]) == pytest.approx(ref.pvalue) and float(lora["welch_t"]) == pytest.approx(ref.statistic)
    assert lora["verdict"] == f"not significant (Welch p={ref.pvalue:.3g}, n=2 vs paper n=3 assumed)"
    assert lora["ours_params"] == "393,216 (0.38M)" and lora["paper_params"] == "0.35M"
    md = (out / "compare.md").read_text()
    assert "| Verdict | Params (paper) | Params (ours) |" in md


def test_welch_verdict_equals_scipy() -> None:
    ours = tables.Cell(70.2, 0.3, 3, "", "")
    v = tables.welch_verdict(ours, 69.0, 0.7, 3)
    ref = ttest_ind_from_stats(70.2, 0.3, 3, 69.0, 0.7, 3, equal_var=False)
    assert v.p == pytest.approx(ref.pvalue) and v.t == pytest.approx(ref.statistic)
    assert v.significant == (ref.pvalue < 0.05) and "paper n=3)" in v.text   # stated n: no "assumed"
    far = tables.welch_verdict(tables.Cell(60.0, 0.5, 5, "", ""), 70.0, 0.5, 5)
    assert far.significant is True and far.text.startswith("significant (Welch p=")
    assert tables.welch_verdict(ours, 69.0, None, 3).text == "Δ only: the paper prints no ±"
    assert tables.welch_verdict(tables.Cell(70.0, math.nan, 1, "", ""), 69.0, 0.7, 3).text == "Δ only: ours n=1"
    assert tables.welch_verdict(tables.Cell(math.nan, math.nan, 0, "", ""), 69.0, 0.7, 3).text == "missing"


def test_repo_paper_csvs_load() -> None:
    df = tables.load_paper(tables.REPO_ROOT / "results" / "paper")
    assert set(df["paper"]) and df["table"].notna().all() and df["source"].notna().all()
    row = df[(df.model == "gpt2-medium") & (df.method == "lora") & (df.metric == "BLEU") & (df.dataset == "e2e")]
    by_file = dict(zip(row["file"], row["value"]))
    # LoRA Table 3 prints 70.4; LoDA Table 1 prints its own LoRA re-run, 69.0.
    assert by_file == {"lora_table3_e2e.csv": 70.4, "loda_table1_e2e.csv": 69.0}


def test_paired_ttest_equals_scipy() -> None:
    a = {110: 70.1, 111: 70.6, 112: 70.2, 113: 99.0}
    b = {110: 69.8, 111: 70.4, 112: 70.3}
    res = stats.paired_ttest(a, b)
    ref = ttest_rel([70.1, 70.6, 70.2], [69.8, 70.4, 70.3])
    assert res.seeds == (110, 111, 112) and res.n == 3
    assert res.statistic == pytest.approx(ref.statistic) and res.pvalue == pytest.approx(ref.pvalue)
    with pytest.raises(LodabenchError, match="at least 2 seeds"):
        stats.paired_ttest({110: 1.0}, {110: 2.0, 111: 3.0})


def test_summarize_sample_std() -> None:
    s = stats.summarize([1.0, 2.0, None, float("nan"), 4.0])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3)
    assert s.std == pytest.approx(pd.Series([1.0, 2.0, 4.0]).std(ddof=1))
    one = stats.summarize([5.0])
    assert one.n == 1 and math.isnan(one.std)


def test_cli_ttest_and_outputs(runs: Path, tmp_path: Path, capsys) -> None:
    assert tables.main(["--runs-dir", str(runs), "--ttest", "lora", "loda", "--metric", "BLEU"]) == 0
    text = capsys.readouterr().out
    ref = ttest_rel([70.0, 71.0], [70.5, 71.8])
    assert f"t = {ref.statistic:.4f}" in text and "seeds [110, 111]" in text
    with pytest.raises(LodabenchError, match="matches 2 rows"):
        tables.main(["--runs-dir", str(runs), "--ttest", "r_loda", "lora"])
    out = tmp_path / "tables"
    assert tables.main(["--runs-dir", str(runs), "--out-dir", str(out), "--paper-dir", str(tmp_path / "none")]) == 0
    assert (out / "params.csv").is_file()
    assert (out / "sweep__e2e__gpt2-medium__rank.png").is_file() and (out / "sweep__e2e__gpt2-medium__rank.pdf").is_file()


def test_runs_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(LodabenchError, match="does not exist"):
        tables.load_runs(tmp_path / "nope")


def test_glue_layout(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, (mrpc, sst2) in zip((110, 111), ((88.0, 94.0), (90.0, 95.0))):
        write_run(runs, "lora", "experiment=glue_mrpc_lora", seed, "complete", {"accuracy": mrpc, "f1": 91.0},
                  data="mrpc", model="roberta-base", params=294_912)
        write_run(runs, "lora", "experiment=glue_sst2_lora", seed, "complete", {"accuracy": sst2},
                  data="sst2", model="roberta-base", params=294_912)
    write_run(runs, "lora", "default", 110, "failed", None, data="cola", model="roberta-base", error="boom")
    out = tmp_path / "out"
    tables.build(runs, out, None, plots=False)
    df = pd.read_csv(out / "glue__roberta-base.csv", keep_default_na=False)
    assert len(df) == 1                       # per-task overlays of one setting form one row
    row = df.iloc[0]
    assert row["MRPC"] == "89.0 ± 1.4 [n=2]"  # accuracy, not F1; sample std of 88, 90 = sqrt(2)
    assert row["SST-2"] == "94.5 ± 0.7 [n=2]"
    assert row["CoLA"].startswith("failed†") and row["MNLI"] == "missing" and row["Avg."] == "missing"
    md = (out / "glue__roberta-base.md").read_text()
    assert "| MNLI | SST-2 | MRPC | CoLA | QNLI | QQP | RTE | STS-B | Avg. |" in md
    _compile_if_possible(tmp_path, (out / "glue__roberta-base.tex").read_text() + (out / "params.tex").read_text())


def test_sweep_rows_without_runs_show_as_missing(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tables.build(runs, out, None, sweeps=["e2e_lora_rank"], plots=False)
    df = pd.read_csv(out / "table1_e2e__gpt2-medium.csv", keep_default_na=False)
    # `sweep` is excluded from run-directory names (conf/hydra/default.yaml), so a preset's runs
    # share directories with the same runs launched by hand.
    expected = df[df.row_dir.str.contains("method.r=")]
    assert not df.row_dir.str.contains("sweep=").any()
    assert sorted(expected["label"]) == ["LoRA (r=1)", "LoRA (r=2)", "LoRA (r=4)", "LoRA (r=8)"]
    assert set(expected["BLEU"]) == {"missing"} and set(expected["n"]) == {0} and set(expected["flag"]) == {"†"}
    assert set(expected["status"]) == {"missing: no run directory"}


def _compile_if_possible(tmp_path: Path, tex: str) -> None:
    engine = _pdflatex(required=False)
    if engine is None:
        return
    doc = tmp_path / "more.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\\end{document}\n")
    res = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]


# ----------------------------------------------------------------------------------------------
# The paper's setting (issue #26): smoke runs under the paper's model name are never matched

# What a 2-step random-init tiny GPT-2 run under experiment=e2e_loda writes (a real run of
# `experiment=e2e_loda model.source=config model.pretrained=gpt2 +model.config_overrides.n_layer=2
# +model.config_overrides.n_embd=64 +model.config_overrides.n_head=4 trainer.max_steps=2
# data.max_train_examples=16 data.max_eval_items=2 trainer.max_dev_batches=1 ...`; its record's counts).
SMOKE_OVERRIDES = ["experiment=e2e_loda", "model.source=config", "model.pretrained=gpt2",
                   "+model.config_overrides.n_layer=2", "+model.config_overrides.n_embd=64",
                   "+model.config_overrides.n_head=4", "trainer.max_steps=2", "data.max_train_examples=16",
                   "data.max_eval_items=2", "trainer.max_dev_batches=1"]
SMOKE_CONFIG = {"trainer": {"max_steps": 2, "max_dev_batches": 1},
                "data": {"max_train_examples": 16, "max_eval_items": 2},
                "model": {"source": "config", "pretrained": "gpt2",
                          "config_overrides": {"attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                                               "n_layer": 2, "n_embd": 64, "n_head": 4}}}


def write_smoke(runs: Path, seed: int = 110) -> Path:
    return write_run(runs, "loda", "smoke", seed, "complete", dict(E2E), params=2_176, total=3_384_256,
                     config=SMOKE_CONFIG, overrides=[*SMOKE_OVERRIDES, f"seed={seed}"])


def _gaps(tmp_path: Path, overrides: list[str], **kw) -> list[str]:
    d = write_run(tmp_path / "runs", "loda", "x", 110, "complete", dict(E2E), params=394_752, overrides=overrides, **kw)
    return tables.paper_setting_gaps(json.loads((d / "record.json").read_text()), overrides)


def test_paper_setting_full_budget_gpt2_medium_has_no_gaps(tmp_path: Path) -> None:
    assert _gaps(tmp_path, ["experiment=e2e_loda", "seed=110"]) == []


def test_paper_setting_each_criterion(tmp_path: Path) -> None:
    epochs = _gaps(tmp_path / "a", ["experiment=e2e_loda", "trainer.epochs=1"], config={"trainer": {"epochs": 1}})
    assert epochs == ["trainer.epochs=1 (the recipe, experiment=e2e_loda: 5)"]
    assert _gaps(tmp_path / "b", ["experiment=e2e_loda", "trainer.epochs=10"], config={"trainer": {"epochs": 10}}) == []
    limit = _gaps(tmp_path / "c", ["data.max_eval_items=9"], config={"data": {"max_eval_items": 9}})
    assert limit == ["data.max_eval_items=9 (recipe: null = all)"]
    # A small model given as model.pretrained under model=gpt2-medium: only its counts tell.
    tiny = _gaps(tmp_path / "d", ["model.pretrained=/x/tiny"], config={"model": {"pretrained": "/x/tiny"}},
                 total=3_384_256)
    assert tiny == ["total parameters 3,384,256 (gpt2-medium with this method: 355,217,920)"]
    dropout = _gaps(tmp_path / "e", [], config={"model": {"config_overrides": {"attn_pdrop": 0.1}}})
    assert dropout[0].startswith("model.config_overrides differ from conf/model/gpt2-medium.yaml: attn_pdrop=0.1")


def test_compare_puts_smoke_run_apart(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_smoke(runs)
    for seed, bleu in ((110, 0.70), (111, 0.71)):
        write_run(runs, "loda", "experiment=e2e_loda", seed, "complete", {**E2E, "BLEU": bleu}, params=394_752,
                  overrides=["experiment=e2e_loda", f"seed={seed}"])
    paper = tables.load_paper(REPO_ROOT / "results" / "paper")
    cmp = tables.compare(tables.load_runs(runs), paper[paper.file == "loda_table1_e2e.csv"])
    bleu = cmp[(cmp.method == "loda") & (cmp.metric == "BLEU")]
    ours = bleu[bleu.setting == "the paper's"].iloc[0]
    assert ours.n == 2 and "Welch p=" in ours.verdict
    smoke = bleu[bleu.setting == tables.NOT_PAPER_SETTING].iloc[0]
    assert smoke.verdict.startswith("not the paper's setting: trainer.max_steps=2")
    assert "model.source='config'" in smoke.verdict and math.isnan(smoke.welch_p)
    md = tables.compare_markdown(cmp, matched_only=True)
    assert "5 of 70 published numbers have a run of ours" in md         # the smoke run's 5 metrics are not
    assert "5 lines of runs not the paper's setting are in compare.md only" in md
    assert not any(tables.NOT_PAPER_SETTING in line for line in md.splitlines() if line.startswith("|"))
    # Alone, the smoke run leaves the published number missing on the paper's setting.
    alone = tables.compare([r for r in tables.load_runs(runs) if r.row_dir.endswith("smoke")], paper)
    cell = alone[(alone.file == "loda_table1_e2e.csv") & (alone.method == "loda") & (alone.metric == "BLEU")]
    assert list(cell.verdict.str[:23]) == ["missing", "not the paper's setting"]


def test_tables_without_runs_dir_explains_or_lists_the_sweep(tmp_path: Path) -> None:
    with pytest.raises(LodabenchError, match=r"does not exist: no runs yet.*make e2e-loda.*--runs-dir DIR"):
        tables.main(["--runs-dir", str(tmp_path / "results" / "runs"), "--out-dir", str(tmp_path / "t")])
    assert tables.main(["--runs-dir", str(tmp_path / "results" / "runs"), "--out-dir", str(tmp_path / "t"),
                        "--sweep", "e2e_table1", "--no-plots"]) == 0
    df = pd.read_csv(tmp_path / "t" / "table1_e2e__gpt2-medium.csv", keep_default_na=False)
    assert len(df) == 15 and set(df["status"]) == {"missing: no run directory"}
