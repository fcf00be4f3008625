"""Reliability of fingerprints (issue #27): changed data, weights or tokenizer under the same command
never answer with the old numbers, a resume from other bytes is refused, runs made before
fingerprints keep skipping and are marked, and ``lodabench verify`` says which input changed.

One complete tiny E2E run (local weights folder, a writable copy of ../shared/data named by
$LODABENCH_DATA_ROOT) is made once per session (shared with tests/test_fingerprints.py); each test copies
it with its data and weights and changes the copy.
Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lodabench.run.fingerprints import sha256_file
from runs_helpers import assert_refused, run_cli_here
from test_fingerprints import (args_for, copy_root, env_for, fingerprinted_done, fingerprinted_forced, flip_byte,
                               make_weights_dir, record_of, verify)

torch.set_num_threads(1)
rel = pytest.mark.reliability
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def done(session_folder, data_root, gpt2_tokenizer_dir):
    """One complete tiny run under <root>/{results,data,weights}, made once per session and shared with
    tests/test_fingerprints.py (fingerprinted_done); tests copy the whole root."""
    return fingerprinted_done(session_folder, data_root, gpt2_tokenizer_dir)


@pytest.fixture
def case(done, tmp_path):
    """A copy of the complete run, its data and weights; record.json names the copy's folders."""
    root = tmp_path / "root"
    run_dir = copy_root(done, root)
    return {"root": root, "results": root / "results", "run_dir": run_dir, "data": root / "data",
            "weights": root / "weights", "train": root / "data" / "e2e" / "trainset.csv"}


def relaunch(case, *extra: str, data: Path | None = None):
    """The same command again, in this process (refusals and skips; run_cli_here)."""
    return run_cli_here([*args_for(case["weights"]), *extra], case["results"], env=env_for(data or case["data"]),
                        check=False)


def refused(proc, *needles: str) -> None:
    assert_refused(proc, "force=true", *needles)
    assert "skip (complete)" not in proc.stdout, proc.stdout[-1500:]


@rel(case="training file changed after a complete run (same size, same mtime)",
     done="tiny run to completion; one byte of e2e/trainset.csv changed, size and mtime kept; the same command "
          "again; then with force=true",
     expect="exit 2 naming the run dir, e2e/trainset.csv, the old -> new sha256 prefixes and force=true; "
            "record.json untouched; force=true re-runs and records the new sha256")
def test_changed_training_file_is_not_answered(case, tmp_path, session_folder, data_root, gpt2_tokenizer_dir):
    old = sha256_file(case["train"])
    flip_byte(case["train"])
    before = (case["run_dir"] / "record.json").read_bytes()
    proc = relaunch(case)
    refused(proc, "e2e/trainset.csv: changed", f"sha256 {old[:12]} -> {sha256_file(case['train'])[:12]}",
            str(case["run_dir"]))
    assert (case["run_dir"] / "record.json").read_bytes() == before
    # force=true trains: the session's real subprocess run of exactly these steps (fingerprinted_forced: the
    # same complete run, the same flip_byte, then force=true; run_cli raises unless it exits 0), in a copy
    forced = tmp_path / "forced"
    run_dir = copy_root(fingerprinted_forced(session_folder, data_root, gpt2_tokenizer_dir), forced)
    train = forced / "data" / "e2e" / "trainset.csv"
    assert train.read_bytes() == case["train"].read_bytes()  # the same change
    assert record_of(run_dir)["inputs"]["data"]["sha256"]["e2e/trainset.csv"] == sha256_file(train)


@rel(case="local weights file replaced",
     done="tiny run to completion; weights/model.safetensors overwritten by another model's; the same command",
     expect="exit 2 naming weights model.safetensors and force=true")
def test_replaced_weights_file_is_refused(case, gpt2_tokenizer_dir, tmp_path):
    other = make_weights_dir(tmp_path / "other", gpt2_tokenizer_dir)
    shutil.copy(other / "model.safetensors", case["weights"] / "model.safetensors")
    refused(relaunch(case), "weights model.safetensors: changed")


@rel(case="weights folder gains a file",
     done="tiny run to completion; a README.md added to the weights folder, the same command; then a "
          "pytorch_model.bin added, the same command",
     expect="README.md: skipped with the recorded numbers (not a file from_pretrained reads); pytorch_model.bin: "
            "exit 2 naming weights pytorch_model.bin: added")
def test_weights_folder_extra_file(case):
    (case["weights"] / "README.md").write_text("notes about the model")
    proc = relaunch(case)
    assert proc.returncode == 0 and "skip (complete)" in proc.stdout, proc.stderr[-1500:]
    (case["weights"] / "pytorch_model.bin").write_bytes(b"\0" * 64)
    refused(relaunch(case), "weights pytorch_model.bin: added")


@rel(case="tokenizer file changed",
     done="tiny run to completion; one byte of the tokenizer's vocab.json changed; the same command",
     expect="exit 2 naming tokenizer vocab.json and force=true")
def test_changed_tokenizer_is_refused(case):
    flip_byte(case["weights"] / "vocab.json")
    refused(relaunch(case), "tokenizer vocab.json: changed")


@rel(case="data root moved to a byte-identical copy",
     done="tiny run to completion; $LODABENCH_DATA_ROOT pointed at a copy of its data elsewhere; the same command; "
          "then one byte of the copy's training file changed",
     expect="identical bytes: skipped with the recorded metrics (content decides, not the path); changed copy: "
            "exit 2 naming e2e/trainset.csv")
def test_data_root_moved(case, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(case["data"], moved)
    proc = relaunch(case, data=moved)
    assert proc.returncode == 0 and "skip (complete)" in proc.stdout, proc.stderr[-1500:]
    flip_byte(moved / "e2e" / "trainset.csv")
    refused(relaunch(case, data=moved), "e2e/trainset.csv: changed")


@rel(case="resume after the training file changed",
     done="tiny run made unfinished (status failed, metrics.json removed, checkpoints kept); one byte of "
          "e2e/trainset.csv changed; the same command",
     expect="exit 2 before training: names e2e/trainset.csv with both sha256 prefixes and force=true; the "
            "checkpoint is not advanced; the refused attempt is recorded as failed")
def test_resume_from_other_data_is_refused(case):
    rec = record_of(case["run_dir"])
    rec["status"] = "failed"
    (case["run_dir"] / "record.json").write_text(json.dumps(rec))
    (case["run_dir"] / "metrics.json").unlink()
    latest = (case["run_dir"] / "checkpoints" / "latest.json").read_text()
    flip_byte(case["train"])
    refused(relaunch(case), "e2e/trainset.csv sha256", "unfinished work made from other inputs")
    assert (case["run_dir"] / "checkpoints" / "latest.json").read_text() == latest
    attempts = record_of(case["run_dir"])["attempts"]
    assert attempts[-1]["start"] == "resume" and attempts[-1]["outcome"] == "failed"


@rel(case="record made before fingerprints",
     done="tiny run to completion; its record's inputs stripped to what records held before fingerprints; the "
          "same command; lodabench verify",
     expect="skipped with the recorded metrics (old runs keep loading), a warning says its inputs cannot be "
            "re-checked; verify exits 1 saying it was made before fingerprints")
def test_record_before_fingerprints(case):
    rec = record_of(case["run_dir"])
    rec["inputs"] = {"data": {k: rec["inputs"]["data"][k] for k in ("source", "data_root", "files")},
                     "weights": {k: rec["inputs"]["weights"][k] for k in ("source", "location", "path")}}
    rec["attempts"][-1]["inputs"] = rec["inputs"]
    (case["run_dir"] / "record.json").write_text(json.dumps(rec))
    flip_byte(case["train"])  # cannot be seen: nothing was recorded to compare with
    proc = relaunch(case)
    assert proc.returncode == 0 and "skip (complete)" in proc.stdout
    assert "recorded before fingerprints" in proc.stdout + proc.stderr  # the log line (Hydra logs to stdout)
    checked = verify(case["run_dir"])
    assert checked.returncode == 1 and "made before fingerprints" in checked.stdout


@rel(case="record with a malformed inputs block",
     done="tiny run to completion; inputs.data.sha256 replaced by a list; the same command; lodabench verify",
     expect="exit 2 naming inputs.data.sha256 and force=true (no traceback); verify exits 1 naming the key")
def test_malformed_inputs_block(case):
    rec = record_of(case["run_dir"])
    rec["inputs"]["data"]["sha256"] = ["f27d48df"]
    (case["run_dir"] / "record.json").write_text(json.dumps(rec))
    refused(relaunch(case), "inputs.data.sha256 is not a mapping")
    checked = verify(case["run_dir"])
    assert checked.returncode == 1 and "inputs.data.sha256" in checked.stdout


@rel(case="lodabench verify",
     done="verify on the intact run; on the run after deleting its dev file; on the intact and a folder with no "
          "record.json",
     expect="intact: exit 0, every data/weights/tokenizer/scorer file ok; deleted file: exit 1, "
            "data e2e/devset.csv: missing; a folder that is not a run: exit 2 naming it")
def test_verify_statuses(case, tmp_path):
    ok = verify(case["run_dir"])
    assert ok.returncode == 0 and "trusted as recorded" in ok.stdout, ok.stdout + ok.stderr
    for line in ("data e2e/trainset.csv: ok", "weights model.safetensors: ok", "tokenizer vocab.json: ok",
                 "scorer meteor/meteor-1.5.jar: ok"):
        assert line in ok.stdout
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    bad = verify(case["run_dir"], not_a_run)
    assert bad.returncode == 2 and str(not_a_run) in bad.stderr
    (case["data"] / "e2e" / "devset.csv").unlink()
    gone = verify(case["run_dir"])
    assert gone.returncode == 1 and "data e2e/devset.csv: missing" in gone.stdout and "NOT TRUSTED" in gone.stdout
