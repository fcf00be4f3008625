"""The spine end to end: tiny GPT-2 + real tokenizer + real E2E slices → train, decode, score, record;
and an interrupted run resumed from its checkpoint ends where an uninterrupted one does."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from runs_helpers import TINY_E2E, final_weights, run_cli, run_cli_here, run_dirs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, complete_run):
    """A private copy of the session's complete tiny E2E run (conftest.complete_run)."""
    results, run_dir = complete_run(TINY_E2E, tmp_path_factory.mktemp("run") / "results")
    return results, run_dir


def test_run_leaves_complete_record(finished_run):
    _, run_dir = finished_run
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr", "dev_loss"):
        assert isinstance(metrics[key], float), key
    assert record["metrics"]["BLEU"] == metrics["BLEU"]
    assert record["seed"] == 110 and record["config"]["seed"] == 110
    assert record["config"]["method"]["name"] == "lora"
    assert len(record["git"]["commit"] or "") in (0, 40)
    assert record["packages"]["torch"].startswith("2.13")
    assert record["trainable_params"]["trainable"] > 0
    assert record["wall_time_s"] > 0 and record["peak_memory"]["cpu_rss_mb"] > 0
    assert record["train"]["global_step"] == 6
    assert "last" in record["checkpoint_used"]
    # Hydra's capture and the resolved config live beside the record.
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["name"] == "tiny-gpt2"


def test_outputs_in_official_formats(finished_run):
    _, run_dir = finished_run
    hyps = (run_dir / "hyp.txt").read_text(encoding="utf-8").split("\n")
    assert hyps[-1] == "" and len(hyps) - 1 == 6          # one line per unique MR
    groups = (run_dir / "refs.txt").read_text(encoding="utf-8").strip("\n").split("\n\n")
    assert len(groups) == 6 and all(g.strip() for g in groups)
    assert not (run_dir / "hyp.partial.jsonl").exists()


def test_checkpoint_holds_only_trainable_tensors(finished_run):
    _, run_dir = finished_run
    weights = final_weights(run_dir)
    assert weights and all("lora" in k for k in weights), sorted(weights)[:5]
    # r=8 on q and v of 2 layers of a 64-dim model: 2 layers x 2 matrices x (64*8 + 8*64)
    assert sum(t.numel() for t in weights.values()) == 2 * 2 * (64 * 8 + 8 * 64)


def test_relaunch_skips_complete_run(finished_run):
    results, run_dir = finished_run
    before = (run_dir / "metrics.json").read_text()
    proc = run_cli_here(TINY_E2E, results)  # in this process: a skip needs no fresh interpreter's imports
    assert "skip (complete)" in proc.stdout
    assert (run_dir / "metrics.json").read_text() == before


def test_interrupted_then_resumed_equals_uninterrupted(finished_run, tmp_path):
    _, reference_dir = finished_run
    crashed = run_cli(TINY_E2E, tmp_path, env={"LODABENCH_FAULT_AFTER_STEP": "3"}, check=False)
    assert crashed.returncode != 0
    (run_dir,) = run_dirs(tmp_path)
    assert json.loads((run_dir / "record.json").read_text())["status"] == "running"
    assert json.loads((run_dir / "checkpoints" / "latest.json").read_text())["global_step"] == 2
    run_cli_here(TINY_E2E, tmp_path)  # the resume: in this process
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete" and len(record["attempts"]) == 2
    ref_w, res_w = final_weights(reference_dir), final_weights(run_dir)
    assert ref_w.keys() == res_w.keys()
    for key in ref_w:
        torch.testing.assert_close(res_w[key], ref_w[key], rtol=0, atol=0)
    ref_m = json.loads((reference_dir / "metrics.json").read_text())
    assert json.loads((run_dir / "metrics.json").read_text()) == ref_m
