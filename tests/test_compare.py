"""lodabench compare on the committed run records: the issue #29 bar, and exactness on the full sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from lodabench.cli import main as cli_main
from lodabench.errors import ConfigError
from lodabench.results.compare import compare_runs, load_run
from lodabench.scoring.sufficient import full_sample, generation_metrics, glue_item_metrics

REPO = Path(__file__).resolve().parent.parent
GLUE = REPO / "results/minilm_glue/runs"
E2E = REPO / "results/smollm2_e2e/runs/e2e/smollm2-135m"
SST2_A = GLUE / "sst2/minilm-l6/lora/experiment=minilm_glue_sst2,trainer.lr=0.002/seed110"
SST2_B = GLUE / "sst2/minilm-l6/ft/experiment=minilm_glue_sst2,trainer.lr=0.0002/seed110"
LORA = [E2E / f"lora/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]
LODA = [E2E / f"loda/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]


def _cli_json(capsys, *argv) -> dict:
    assert cli_main(["compare", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _correct(run_dir: Path) -> dict[int, bool]:
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return {r["i"]: r["prediction"] == r["label"] for r in rows}


def _exact_permutation_p(a: dict, b: dict) -> float:
    n_a = sum(a[i] and not b[i] for i in a)
    n_b = sum(b[i] and not a[i] for i in a)
    k = np.arange(n_a + n_b + 1)
    return float(binom.pmf(k, n_a + n_b, 0.5)[np.abs(2 * k - n_a - n_b) >= abs(n_a - n_b)].sum())


@pytest.mark.parametrize("b_dir", [SST2_B, GLUE / "sst2/minilm-l6/prompt/experiment=minilm_glue_sst2,trainer.lr=0.003/seed110",
                                   GLUE / "sst2/minilm-l6/s_loda/experiment=minilm_glue_sst2,trainer.lr=0.002/seed111",
                                   GLUE / "sst2/minilm-l6/r_loda/experiment=minilm_glue_sst2,method.rank=150,"
                                          "trainer.lr=0.002/seed111"], ids=["p1", "p0", "p0.03", "p0.09"])
def test_sst2_ar_gives_the_exact_delta_and_permutation_p(capsys, b_dir):
    if not (b_dir / "predictions.jsonl").is_file():
        pytest.skip(f"{b_dir} is not committed")
    out = _cli_json(capsys, "--a", SST2_A, "--b", b_dir, "--test", "ar", "--trials", "20000")["accuracy"]
    rec_a = json.loads((SST2_A / "metrics.json").read_text())["accuracy"]
    rec_b = json.loads((b_dir / "metrics.json").read_text())["accuracy"]
    assert out["delta"] == rec_a - rec_b and (out["a"], out["b"]) == (rec_a, rec_b)
    assert abs(out["p"] - _exact_permutation_p(_correct(SST2_A), _correct(b_dir))) < 0.01
    assert (out["test"], out["n_items"], out["n_seeds_a"], out["n_seeds_b"]) == ("ar", 872, 1, 1)


@pytest.mark.parametrize("test", ["bootstrap", "ar"])
def test_a_run_against_itself(capsys, test):
    out = _cli_json(capsys, "--a", SST2_A, "--b", SST2_A, "--test", test, "--margin", "0.5")["accuracy"]
    assert (out["delta"], out["p"], out["equivalent"]) == (0.0, 1.0, True)
    seeds = _cli_json(capsys, "--a", *LORA, "--b", *LORA, "--test", test, "--margin", "0.001", "--metrics", "BLEU")
    assert (seeds["BLEU"]["delta"], seeds["BLEU"]["p"], seeds["BLEU"]["equivalent"]) == (0.0, 1.0, True)


def test_three_by_three_e2e_seeds_bleu(capsys):
    out = _cli_json(capsys, "--a", *LORA, "--b", *LODA, "--metrics", "BLEU", "NIST")
    for name, r in out.items():
        rec_a = [json.loads((d / "metrics.json").read_text())[name] for d in LORA]
        rec_b = [json.loads((d / "metrics.json").read_text())[name] for d in LODA]
        assert r["delta"] == pytest.approx(np.mean(rec_a) - np.mean(rec_b), abs=1e-12)
        assert r["ci95"][0] < r["delta"] < r["ci95"][1]
        assert (r["n_seeds_a"], r["n_seeds_b"], r["n_items"]) == (3, 3, 60)


def test_items_are_matched_by_identity_not_position(tmp_path, capsys):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(SST2_B, shuffled)
    lines = (SST2_B / "predictions.jsonl").read_text().splitlines()
    (shuffled / "predictions.jsonl").write_text("\n".join(lines[::-1]) + "\n")
    plain = _cli_json(capsys, "--a", SST2_A, "--b", SST2_B, "--trials", "500")["accuracy"]
    assert _cli_json(capsys, "--a", SST2_A, "--b", shuffled, "--trials", "500")["accuracy"] == plain


def test_partly_overlapping_items_are_recomputed_on_the_common_ones(tmp_path, capsys):
    part = tmp_path / "part"
    shutil.copytree(SST2_B, part)
    lines = (SST2_B / "predictions.jsonl").read_text().splitlines()
    (part / "predictions.jsonl").write_text("\n".join(lines[:300]) + "\n")
    out = _cli_json(capsys, "--a", SST2_A, "--b", part, "--trials", "200")["accuracy"]
    keep = list(_correct(part))
    assert out["n_items"] == 300
    assert out["a"] == pytest.approx(100 * np.mean([_correct(SST2_A)[i] for i in keep]))


def test_clear_errors(tmp_path, capsys):
    assert cli_main(["compare", "--a", str(SST2_A), "--b", str(LORA[0])]) == 2
    assert "one task" in capsys.readouterr().err
    assert cli_main(["compare", "--a", str(SST2_A), "--b", str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--metrics f1"):
        compare_runs([SST2_A], [SST2_B], metrics=["f1"])


# --- exact on the full sample: the recomputation equals what the official scorers recorded -------


def _glue_runs():
    return sorted(p.parent for p in GLUE.glob("*/minilm-l6/*/*/seed110/predictions.jsonl"))


@pytest.mark.parametrize("run_dir", _glue_runs(), ids=lambda p: f"{p.parts[-5]}-{p.parts[-3]}-{p.parts[-2][-12:]}")
def test_glue_metrics_equal_the_recorded_ones(run_dir):
    run = load_run(run_dir)
    rows = list(run.files[""].values())
    metrics = glue_item_metrics(run.task, [[p for p, _ in rows]], [y for _, y in rows])
    for name, (metric, stats) in metrics.items():
        assert full_sample(metric, stats[0]) == pytest.approx(run.recorded[name], rel=1e-9, abs=1e-9), name


def test_bleu_nist_equal_the_recorded_ones():
    dirs = sorted(p.parent for p in E2E.glob("*/*/seed*/hyp.txt"))
    runs = [load_run(d) for d in dirs]
    rows = [list(r.files[""].values()) for r in runs]
    metrics = generation_metrics([[h for h, _ in r] for r in rows], [g for _, g in rows[0]], ["BLEU", "NIST"])
    for name, (metric, stats) in metrics.items():
        for run, s in zip(runs, stats):
            assert full_sample(metric, s) == pytest.approx(run.recorded[name], rel=1e-12), (run.path, name)


def test_meteor_rouge_cider_equal_the_recorded_ones():
    """Java scores these (PTB tokenizer, METEOR 1.5 jar); without it compare skips them and says so."""
    if shutil.which("java") is None:
        pytest.skip("no Java: METEOR/ROUGE_L/CIDEr need the jars (compare reports them as skipped)")
    runs = [load_run(LORA[0]), load_run(LODA[1])]
    rows = [list(r.files[""].values()) for r in runs]
    names = ["METEOR", "ROUGE_L", "CIDEr"]
    metrics = generation_metrics([[h for h, _ in r] for r in rows], [g for _, g in rows[0]], names)
    for name, (metric, stats) in metrics.items():
        for run, s in zip(runs, stats):
            assert full_sample(metric, s) == pytest.approx(run.recorded[name], rel=1e-12), (run.path, name)


def test_without_java_the_coco_metrics_are_skipped_and_said_so(monkeypatch, capsys):
    from lodabench.errors import ScoringError
    from lodabench.scoring import java

    def no_java():
        raise ScoringError("java not found on PATH (test)")
    monkeypatch.setattr(java, "java_executable", no_java)
    assert cli_main(["compare", "--a", str(LORA[0]), "--b", str(LODA[0]), "--trials", "200", "--json"]) == 0
    captured = capsys.readouterr()
    assert sorted(json.loads(captured.out)) == ["BLEU", "NIST"]
    assert "METEOR, ROUGE_L, CIDEr skipped" in captured.err
