"""lodabench attribute: each factor's share of ours − paper, re-scored independently, and the bookkeeping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from lodabench.cli import main as cli_main
from lodabench.errors import ConfigError
from lodabench.results.attribute import attribute
from lodabench.scoring.mteval import perl_bleu_nist, perl_bleu_nist_exact, python_bleu_nist
from lodabench.scoring.textio import read_hypotheses, read_reference_groups, write_hypotheses, write_reference_groups
from lodabench.tasks.e2e_lora_text import lora_reference
from test_paired_dart import HYPS, REFS, _recorded_without_java, _unrounded_bleu

REPO = Path(__file__).resolve().parent.parent
SHARED = Path("/work/shared") if Path("/work/shared/paper").is_dir() else REPO.parent / "shared"
E2E = REPO / "results/smollm2_e2e/runs/e2e/smollm2-135m"
LORA = [E2E / f"lora/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]
LODA = [E2E / f"loda/experiment=smollm2_e2e,trainer.lr=0.001/seed{s}" for s in (110, 111, 112)]
SST2 = [REPO / f"results/minilm_glue/runs/sst2/minilm-l6/lora/experiment=minilm_glue_sst2,trainer.lr=0.002/seed{s}"
        for s in (110, 111, 112)]
LODA_PAPER_LORA_BLEU = 69.0  # shared/paper/loda_table1_e2e.csv, row LoRA


def _bleu(run_dir: Path, lora_text: bool = False, hyp_dir: Path | None = None) -> float:
    refs = read_reference_groups(run_dir / "refs.txt")
    if lora_text:  # LoRA's test-split rule (measured identical to e2e_lora/test.txt): independent of the file map
        refs = [[lora_reference(r, "test") for r in g] for g in refs]
    return python_bleu_nist(read_hypotheses((hyp_dir or run_dir) / "hyp.txt"), refs)["BLEU"]


def _factor(result: dict, name: str) -> dict:
    return next(f for f in result["factors"] if f["factor"] == name)


def _books_balance(r: dict) -> None:
    explained = sum(f["explains"] for f in r["factors"])
    assert r["gap"] == pytest.approx(explained + r["remainder"], abs=1e-9)
    assert r["interaction"] == pytest.approx(explained - sum(f["alone"] for f in r["factors"]), abs=1e-9)


def test_reference_text_on_committed_e2e_seeds():
    r = attribute([str(d) for d in LORA], "loda", "BLEU", SHARED / "paper", SHARED / "data", trials=500)
    base = 100 * np.mean([_bleu(d) for d in LORA])
    mapped = 100 * np.mean([_bleu(d, lora_text=True) for d in LORA])
    assert r["ours"] == pytest.approx(base, abs=1e-9) and r["gap"] == pytest.approx(base - LODA_PAPER_LORA_BLEU)
    text = _factor(r, "reference text")
    assert text["status"] == "applied" and text["explains"] == pytest.approx(base - mapped, abs=1e-9)
    assert text["ci95"][0] < text["explains"] < text["ci95"][1]
    assert [f["status"] for f in r["factors"]] == ["already", "applied", "already", "already"]
    assert r["order"] == ["checkpoint", "reference text", "scorer", "aggregation"]
    _books_balance(r)
    assert any("not the paper's gpt2-medium" in n for n in r["notes"])
    perl = 100 * np.mean([perl_bleu_nist(read_hypotheses(d / "hyp.txt"), read_reference_groups(d / "refs.txt"))["BLEU"]
                          for d in LORA])
    assert r["variants"]["Perl mteval-v13a (measure_scores.py without -p, 4 decimals)"] == pytest.approx(perl)


def test_a_factor_without_its_files_is_reported_not_guessed(tmp_path, capsys):
    r = attribute([str(d) for d in LORA], "loda", "BLEU", SHARED / "paper", tmp_path, trials=200)
    text = _factor(r, "reference text")
    assert text["status"] == "not evaluable" and "absent" in text["note"] and text["explains"] == 0.0
    assert r["remainder"] == pytest.approx(r["gap"])
    assert cli_main(["attribute", *map(str, LORA), "--paper", "loda", "--paper-dir", str(SHARED / "paper"),
                     "--data-root", str(tmp_path), "--trials", "100"]) == 0
    out = capsys.readouterr().out
    assert "NOT EVALUATED" in out and "checkpoint -> reference text -> scorer -> aggregation" in out


def test_aggregation_median_of_seeds_as_lora_glue():
    r = attribute([str(d) for d in SST2], "lora", "accuracy", trials=500)
    rec = [json.loads((d / "metrics.json").read_text())["accuracy"] for d in SST2]
    agg = _factor(r, "aggregation")
    assert (agg["ours"], agg["paper"], agg["status"]) == ("mean", "median", "applied")
    assert agg["explains"] == pytest.approx(np.mean(rec) - np.median(rec), abs=1e-9)
    assert _factor(r, "checkpoint")["status"] == "not evaluable"
    assert _factor(r, "scorer")["status"] == "not applicable"
    _books_balance(r)


def _with_epochs(tmp_path: Path) -> list[Path]:
    """The LoRA seeds, each with epochs/1 = its own outputs and epochs/2 = a LoDA seed's (same 60 items)."""
    dirs = []
    for run, other in zip(LORA, LODA):
        d = tmp_path / run.name
        shutil.copytree(run, d)
        for epoch, src in ((1, run), (2, other)):
            e = d / "epochs" / str(epoch)
            e.mkdir(parents=True)
            for f in ("hyp.txt", "refs.txt", "metrics.json"):
                shutil.copy(src / f, e / f)
        dirs.append(d)
    return dirs


def test_checkpoint_best_epoch_then_reference_text_interact(tmp_path):
    dirs = _with_epochs(tmp_path)
    r = attribute([str(d) for d in dirs], "lora", "BLEU", None, SHARED / "data", trials=300)  # repo's results/paper
    best = [max((_bleu(run), run), (_bleu(other), other)) for run, other in zip(LORA, LODA)]
    ckpt = _factor(r, "checkpoint")
    assert ckpt["status"] == "applied"
    assert ckpt["explains"] == pytest.approx(100 * (np.mean([_bleu(d) for d in LORA]) - np.mean([b for b, _ in best])))
    # the reference text applied after the checkpoint rescoring acts on the chosen epochs' outputs
    after = 100 * np.mean([_bleu(src, lora_text=True) for _, src in best])
    assert _factor(r, "reference text")["explains"] == pytest.approx(100 * np.mean([b for b, _ in best]) - after)
    assert r["interaction"] != 0.0
    _books_balance(r)


def test_perl_scorer_is_resampled_too(tmp_path):
    """A data.mteval=perl run: the Perl script's per-item statistics (scoring/sufficient.py) give the
    scorer factor an interval; its points are the unrounded values, which round to the printed ones."""
    dirs = []
    for run in LORA:
        d = tmp_path / run.name
        shutil.copytree(run, d)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["data"]["mteval"] = "perl"
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        rec = json.loads((d / "metrics.json").read_text())
        rec.update(perl_bleu_nist(read_hypotheses(d / "hyp.txt"), read_reference_groups(d / "refs.txt")))
        (d / "metrics.json").write_text(json.dumps(rec))
        dirs.append(d)
    r = attribute([str(d) for d in dirs], "loda", "BLEU", SHARED / "paper", tmp_path, trials=200)
    scorer = _factor(r, "scorer")
    perl = [perl_bleu_nist_exact(read_hypotheses(d / "hyp.txt"), read_reference_groups(d / "refs.txt"))["BLEU"]
            for d in LORA]
    assert (scorer["ours"], scorer["paper"], scorer["status"]) == ("perl", "python", "applied")
    assert scorer["explains"] == pytest.approx(100 * (np.mean(perl) - np.mean([_bleu(d) for d in LORA])), abs=1e-9)
    assert scorer["ci95"][0] <= scorer["explains"] <= scorer["ci95"][1] and r["ours_ci95"] is not None
    recorded = [json.loads((d / "metrics.json").read_text())["BLEU"] for d in dirs]
    assert [round(v / 100, 4) for v in r["ours_per_seed"]] == recorded
    assert not any("Perl" in n or "recorded" in n for n in r["notes"]), r["notes"]
    _books_balance(r)


# --- DART: both scorers recomputed from tiny run directories (as tests/test_paired_dart.py builds them) ---

DART_SEEDS = [HYPS, [HYPS[0], "Green Man", "Alimentum is Italian", HYPS[3], "", "a b c"],
              [HYPS[0], "The Green Man pub.", "Alimentum", "Pietro Canonica designed the monument.", HYPS[4], "a b"]]
LODA_PAPER_LORA_DART = {"BLEU": 47.2, "TER": 0.480}  # results/paper/loda_table2_dart.csv, row LoRA


def _dart_runs(tmp_path: Path, extra: dict | None = None) -> list[Path]:
    dirs = []
    for seed, hyps in enumerate(DART_SEEDS, 1):
        d = tmp_path / f"seed{seed}"
        d.mkdir()
        cfg = {"seed": seed, "data": {"name": "dart", "scorer": "dart"}, "model": {"name": "gpt2-medium"},
               "method": {"name": "lora", "r": 4}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        write_hypotheses(d / "hyp.txt", hyps)
        write_reference_groups(d / "refs.txt", REFS)
        (d / "metrics.json").write_text(json.dumps({**_recorded_without_java(hyps, REFS), **(extra or {})}))
        dirs.append(d)
    return dirs


def _records(dirs: list[Path], name: str) -> list[float]:
    return [json.loads((d / "metrics.json").read_text())[name] for d in dirs]


def test_dart_gets_intervals_and_its_full_sample_points_are_the_records(tmp_path):
    dirs = _dart_runs(tmp_path)
    for metric in ("TER", "BLEU"):
        r = attribute([str(d) for d in dirs], "loda", metric, trials=300)
        assert (r["n_seeds"], r["n_items"]) == (3, len(REFS))
        assert r["ours_ci95"][0] <= r["ours"] <= r["ours_ci95"][1] and r["remainder_ci95"] is not None
        per_seed = [v / r["scale"] for v in r["ours_per_seed"]]
        if metric == "BLEU":  # multi-bleu-detok.perl prints 2 decimals: the unrounded point rounds to them
            assert [round(v, 2) for v in per_seed] == _records(dirs, "BLEU")
            assert per_seed == [_unrounded_bleu(h, REFS)["BLEU"] for h in DART_SEEDS]
        else:
            assert per_seed == pytest.approx(_records(dirs, "TER"), rel=1e-12, abs=1e-12)
        assert r["ours"] == pytest.approx(r["scale"] * np.mean(per_seed), abs=1e-9)
        assert r["gap"] == pytest.approx(r["ours"] - LODA_PAPER_LORA_DART[metric], abs=1e-9)
        assert [f["status"] for f in r["factors"]] == ["already", "not applicable", "already", "already"]
        assert not r["notes"], r["notes"]  # every record recomputed; no "point value only"
        official = np.mean(_records(dirs, f"official_{metric}")) * r["scale"]
        assert r["variants"][f"DART official scorer (official_{metric}, recorded)"] == pytest.approx(official)
        _books_balance(r)


def test_dart_official_scorer_against_loras_with_a_ci(tmp_path, capsys):
    """--metric official_X: ours is run_eval_on_dart.sh's number, the paper's is LoRA's X; the scorer
    factor re-scores the same outputs with LoRA's eval.py, with a paired interval."""
    dirs = _dart_runs(tmp_path)
    exact = {"TER": (_records(dirs, "official_TER"), _records(dirs, "TER")),
             "BLEU": tuple([_unrounded_bleu(h, REFS)[m] for h in DART_SEEDS] for m in ("official_BLEU", "BLEU"))}
    for metric, (official, lora) in exact.items():
        r = attribute([str(d) for d in dirs], "loda", f"official_{metric}", trials=300)
        scorer = _factor(r, "scorer")
        assert (r["metric"], r["paper"]["metric"], scorer["ours"], scorer["paper"], scorer["status"]) == \
            (f"official_{metric}", metric, "official", "lora", "applied")
        assert r["ours"] == pytest.approx(r["scale"] * np.mean(official), rel=1e-12)
        assert scorer["explains"] == pytest.approx(r["scale"] * (np.mean(official) - np.mean(lora)), rel=1e-9, abs=1e-12)
        assert scorer["ci95"][0] <= scorer["explains"] <= scorer["ci95"][1]
        assert scorer["alone"] == pytest.approx(scorer["explains"]) and scorer["alone_ci95"] is not None
        assert r["remainder"] == pytest.approx(r["scale"] * np.mean(lora) - LODA_PAPER_LORA_DART[metric])
        assert not r["notes"] and not r["variants"], (r["notes"], r["variants"])
        _books_balance(r)
    assert cli_main(["attribute", *map(str, dirs), "--paper", "loda", "--metric", "official_TER", "--trials", "100"]) == 0
    out = capsys.readouterr().out
    assert "its TER" in out and "scorer          explains" in out and "[no CI]" not in out


def test_dart_without_java_meteor_says_why_it_has_no_interval(tmp_path, monkeypatch):
    from lodabench.errors import ScoringError
    from lodabench.scoring import java

    def no_java():
        raise ScoringError("java not found on PATH (test)")
    monkeypatch.setattr(java, "java_executable", no_java)
    dirs = _dart_runs(tmp_path, {"METEOR": 0.36, "official_METEOR": 0.38})
    r = attribute([str(d) for d in dirs], "loda", "official_METEOR", trials=100)
    scorer = _factor(r, "scorer")
    assert scorer["status"] == "not evaluable" and "needs Java" in scorer["note"] and scorer["ci95"] is None
    assert r["ours"] == pytest.approx(0.38 * r["scale"]) and r["ours_ci95"] is None
    assert any("official_METEOR needs Java" in n and "recorded values only" in n for n in r["notes"])
    _books_balance(r)


def test_clear_errors(capsys):
    with pytest.raises(ConfigError, match="publishes no e2e"):
        attribute([str(d) for d in LORA], "condlora", "BLEU", SHARED / "paper")
    with pytest.raises(ConfigError, match="--metric"):
        attribute([str(d) for d in LORA], "loda", "TER", SHARED / "paper")
    assert cli_main(["attribute", str(SST2[0]), str(LORA[0]), "--paper", "lora"]) == 2
    assert "one task" in capsys.readouterr().err


def test_without_java_meteor_keeps_its_recorded_value_and_says_so(monkeypatch):
    from lodabench.errors import ScoringError
    from lodabench.scoring import java

    def no_java():
        raise ScoringError("java not found on PATH (test)")
    monkeypatch.setattr(java, "java_executable", no_java)
    r = attribute([str(d) for d in LORA], "loda", "METEOR", SHARED / "paper", SHARED / "data", trials=100)
    rec = [json.loads((d / "metrics.json").read_text())["METEOR"] for d in LORA]
    assert r["ours"] == pytest.approx(100 * np.mean(rec))
    text = _factor(r, "reference text")
    assert text["status"] == "not evaluable" and "needs Java" in text["note"]
    assert _factor(r, "scorer")["status"] == "not applicable"
    _books_balance(r)
