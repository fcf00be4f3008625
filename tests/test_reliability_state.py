"""Reliability of run state (issue 27, "nothing trusted that is not recorded"): work no record vouches
for is moved aside, never resumed; every JSON state file is checked against its shape (exit 2 naming
the file and field, no traceback); non-finite weights are never resumed nor scored; strict JSON.

Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from lodabench.run.records import RunRecord
from lodabench.run.attempts import FORCE_KEEPS
from runs_helpers import TINY_E2E, assert_refused, run_cli_here

torch.set_num_threads(1)
rel = pytest.mark.reliability
ARGS = [*TINY_E2E, "decoding.batch_size=2"]


@pytest.fixture(scope="module")
def done(tmp_path_factory, complete_run):
    """One complete tiny E2E run (made once per session, conftest.complete_run); tests copy its directory."""
    results, run_dir = complete_run(ARGS, tmp_path_factory.mktemp("done") / "results")
    return {"results": results, "run_dir": run_dir}


def _copy(done, tmp_path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    shutil.copytree(done["results"], results)
    return results, results / done["run_dir"].relative_to(done["results"])


def _unfinished(run_dir: Path, *drop: str) -> None:
    """Make the copied run look like one that failed after training: its work is resumed, not skipped."""
    rec = json.loads((run_dir / "record.json").read_text())
    rec["status"] = "failed"
    (run_dir / "record.json").write_text(json.dumps(rec))
    for name in ("metrics.json", *drop):
        (run_dir / name).unlink()


def _step_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]


def _refused(results: Path, *words: str, args=ARGS) -> str:
    return assert_refused(run_cli_here(args, results, check=False), *words)


# ----------------------------------------------------------------------------- unrecorded work
@pytest.mark.slow
@rel(case="relaunch after record.json was deleted",
     done="a complete tiny run; delete record.json; re-run the same command",
     expect="the old checkpoints, hyp.txt and metrics.json are moved (byte-identical) into attempts/unrecorded-1/; "
            "training starts at step 0 (no 'resumed from'), hyp.txt is decoded anew; the new record's attempt 1 "
            "says step 0 and names attempts/unrecorded-1")
def test_deleted_record_is_not_resumed(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    kept = FORCE_KEEPS | {"entry.log"}  # the lock, .hydra/ and logs stay where they are
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*")
              if p.is_file() and p.relative_to(run_dir).parts[0] not in kept}
    assert {"checkpoints", "hyp.txt", "metrics.json"} <= {k.parts[0] for k in before}
    old_hyp_mtime = (run_dir / "hyp.txt").stat().st_mtime_ns
    (run_dir / "record.json").unlink()
    proc = run_cli_here(ARGS, results)  # the whole launch in this process (the entry's imports are paid)
    assert "resumed from" not in proc.stdout + proc.stderr and "no record.json vouches for" in proc.stderr
    aside = run_dir / "attempts" / "unrecorded-1"
    for rel_path, data in before.items():
        assert (aside / rel_path).read_bytes() == data, rel_path  # nothing deleted, nothing changed
    assert (run_dir / "hyp.txt").stat().st_mtime_ns != old_hyp_mtime
    rec = json.loads((run_dir / "record.json").read_text())
    (attempt,) = rec["attempts"]
    assert attempt["start"] == "step 0" and attempt["set_aside_unrecorded"] == "attempts/unrecorded-1"
    assert rec["status"] == "complete" and rec["train"]["global_step"] == 6


@pytest.mark.slow
@rel(case="force=true on a run directory whose record.json is gone",
     done="a complete tiny run; delete record.json and metrics.json; re-run with force=true",
     expect="the work is moved into attempts/unrecorded-1/ (force has no earlier attempt to supersede); "
            "training starts at step 0, never resumes the old checkpoint")
def test_force_without_record_does_not_resume(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    (run_dir / "record.json").unlink()
    (run_dir / "metrics.json").unlink()
    proc = run_cli_here([*ARGS, "force=true"], results)  # the whole launch in this process
    assert "resumed from" not in proc.stdout + proc.stderr
    assert (run_dir / "attempts" / "unrecorded-1" / "checkpoints" / "latest.json").is_file()
    assert not (run_dir / "attempts" / "unrecorded-1" / "metrics.json").exists()


# ----------------------------------------------------------------------------- record.json shape
@pytest.mark.slow  # needs the module's complete run; a CLI launch per case
@rel(case="record.json of the wrong shape",
     done="a complete run's record.json replaced by a JSON list / given status 5 / seed \"110\" / no status; re-run",
     expect="exit 2: DataError naming record.json, the field (top level / status / seed) and 'delete it'; "
            "no traceback, nothing trained")
@pytest.mark.parametrize("mutate, field", [
    (lambda rec: [rec], "the top level must be object, found list"),
    (lambda rec: {**rec, "status": 5}, "field 'status' must be str"),
    (lambda rec: {**rec, "seed": "110"}, "field 'seed' must be int or null, found str"),
    (lambda rec: {k: v for k, v in rec.items() if k != "status"}, "field 'status' missing"),
    (lambda rec: {**rec, "attempts": [{**rec["attempts"][0], "git": "abc"}]}, "field 'attempts[0].git'"),
])
def test_record_of_wrong_shape(done, tmp_path, mutate, field):
    results, run_dir = _copy(done, tmp_path)
    rec = json.loads((run_dir / "record.json").read_text())
    (run_dir / "record.json").write_text(json.dumps(mutate(rec)))
    _refused(results, "record.json has the wrong shape", field, "delete it")
    assert (run_dir / "checkpoints").is_dir() and not (run_dir / "attempts").exists()


@pytest.mark.slow  # needs the module's complete run
@rel(case="record.json with a bare NaN",
     done="a complete run's record.json with wall_time_s: NaN (not JSON); re-run",
     expect="exit 2: record.json is damaged, bare NaN is not JSON; no traceback")
def test_record_with_bare_nan(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    text = (run_dir / "record.json").read_text()
    (run_dir / "record.json").write_text(text.replace('"wall_time_s": ', '"wall_time_s": NaN, "x": ', 1))
    _refused(results, "record.json is damaged", "bare NaN is not JSON")


# ----------------------------------------------------------------------------- checkpoint state
@pytest.mark.slow
@rel(case="trainer_state.json / latest.json of the wrong shape",
     done="an unfinished run (status failed, checkpoints kept) whose trainer_state.json has global_step \"6\" / "
          "global_step 60 / an unknown key, or whose latest.json names a missing directory / '../..'; re-run",
     expect="exit 2: CheckpointError naming the file, the field and what to delete to restart; no traceback, "
            "no extra steps trained")
@pytest.mark.parametrize("victim, patch, words", [
    ("trainer_state.json", {"global_step": "6"}, "field 'global_step' must be int, found str"),
    ("trainer_state.json", {"global_step": 60}, "global_step' is 60 but latest.json says 6"),
    ("trainer_state.json", {"bogus": 1}, "field 'bogus' unknown field"),
    ("latest.json", {"dir": "step-0000099", "global_step": 99}, "'step-0000099', which does not exist"),
    ("latest.json", {"dir": "../..", "global_step": 6}, "is not a plain name"),
])
def test_checkpoint_state_of_wrong_shape(done, tmp_path, victim, patch, words):
    results, run_dir = _copy(done, tmp_path)
    _unfinished(run_dir)
    target = run_dir / "checkpoints" / victim if victim == "latest.json" else _step_dir(run_dir) / victim
    data = json.loads(target.read_text())
    target.write_text(json.dumps(data | patch if victim == "trainer_state.json" else patch))
    _refused(results, victim, words, "delete")
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
@rel(case="trainer state beyond the run's schedule",
     done="an unfinished run whose trainer_state.json and latest.json both say step 60 (the run has 6 steps); re-run",
     expect="exit 2: trainer_state.json field 'global_step' is 60, beyond this run's 6; no steps trained, "
            "no wrong count recorded")
def test_trainer_state_beyond_schedule(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    _unfinished(run_dir)
    step = _step_dir(run_dir)
    state = json.loads((step / "trainer_state.json").read_text())
    (step / "trainer_state.json").write_text(json.dumps({**state, "global_step": 60}))
    (run_dir / "checkpoints" / "latest.json").write_text(json.dumps({"dir": step.name, "global_step": 60}))
    _refused(results, "trainer_state.json", "'global_step' is 60, beyond this run's 6")


# ----------------------------------------------------------------------------- non-finite weights
def _poison(path: Path) -> None:
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = {k: torch.full_like(v, math.nan) for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.slow
@rel(case="checkpoint whose tensors are all NaN",
     done="an unfinished run (hyp.txt and metrics deleted) whose last step checkpoint's trainable.safetensors holds "
          "only NaN; re-run",
     expect="exit 2: CheckpointError naming the file, 'non-finite weights' and the fix; nothing is decoded "
            "(no hyp.txt) or scored")
def test_nan_checkpoint_is_not_resumed_or_scored(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    _unfinished(run_dir, "hyp.txt")
    _poison(_step_dir(run_dir) / "trainable.safetensors")
    _refused(results, "trainable.safetensors", "non-finite weights", "force=true")
    assert not (run_dir / "hyp.txt").exists() and not (run_dir / "hyp.partial.jsonl").exists()


@rel(case="warm start from a NaN checkpoint", done="load_warm_start(model, file whose tensors are NaN)",
     expect="CheckpointError naming the file and 'non-finite weights'; the model is left unchanged")
def test_warm_start_from_nan_checkpoint(tmp_path):
    from lodabench.errors import CheckpointError
    from lodabench import methods
    from lodabench.methods.checkpoint import load_warm_start, save_trainable
    from methods_tiny import tiny

    model = methods.apply_method(tiny("gpt2"), {"name": "lora", "r": 4})
    path = save_trainable(model, tmp_path / "trainable.safetensors")
    _poison(path)
    before = {n: p.clone() for n, p in model.named_parameters() if p.requires_grad}
    with pytest.raises(CheckpointError, match=rf"{path} holds non-finite weights"):
        load_warm_start(model, path)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- hypotheses
@pytest.mark.slow
@rel(case="damaged hyp.partial.jsonl",
     done="an unfinished run (hyp.txt and metrics deleted) with a hyp.partial.jsonl whose 2nd line is cut short "
          "(followed by more lines) / a JSON list / a string index; re-run",
     expect="exit 2: DataError naming hyp.partial.jsonl, the line and 'delete' it; no traceback, no score")
@pytest.mark.parametrize("second, words", [
    ('{"i": 1, "hy', "line 2 is not a JSON object"),
    ('[1, "x"]', "line 2 the top level must be object"),
    ('{"i": "1", "hyp": "x"}', "line 2 field 'i' must be int"),
])
def test_damaged_partial_hypotheses(done, tmp_path, second, words):
    results, run_dir = _copy(done, tmp_path)
    _unfinished(run_dir, "hyp.txt")
    lines = ['{"i": 0, "hyp": "a"}', second, '{"i": 2, "hyp": "c"}']
    (run_dir / "hyp.partial.jsonl").write_text("\n".join(lines) + "\n")
    _refused(results, "hyp.partial.jsonl", words, "delete")
    assert not (run_dir / "hyp.txt").exists()


@pytest.mark.slow
@rel(case="hyp.partial.jsonl with a torn last line (crash while writing)",
     done="an unfinished run (hyp.txt and metrics deleted) whose hyp.partial.jsonl holds item 0 and a torn "
          "line without its newline; re-run",
     expect="the torn line is cut, item 0 is reused, the rest decoded; the run completes with 6 hypotheses")
def test_torn_partial_hypotheses_resume(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    first = (run_dir / "hyp.txt").read_text().splitlines()[0]
    _unfinished(run_dir, "hyp.txt")
    (run_dir / "hyp.partial.jsonl").write_text(json.dumps({"i": 0, "hyp": first}) + '\n{"i": 1, "hy')
    proc = run_cli_here(ARGS, results)  # the whole launch in this process
    assert "torn last line" in proc.stdout + proc.stderr  # a log warning (Hydra's log goes to stdout)
    assert len((run_dir / "hyp.txt").read_text().splitlines()) == 6


# ----------------------------------------------------------------------------- strict JSON
@rel(case="NaN metric or loss reaching a state file",
     done="RunRecord.complete({'BLEU': nan, 'dev': inf}) and a trainer state whose dev loss is NaN, written with "
          "io.atomic_write_json",
     expect="record.json and metrics.json hold null where the value was NaN/inf (strict JSON: no bare NaN), "
            "and read back through their shape checks")
def test_nan_metrics_are_written_as_null(tmp_path):
    from lodabench.io import atomic_write_json
    from lodabench.state_files import read_state

    record = RunRecord(tmp_path)
    record.start({"seed": 1}, 1, fresh=True)
    record.complete({"BLEU": float("nan"), "dev": float("inf"), "NIST": 1.5})
    for name in ("record.json", "metrics.json"):
        text = (tmp_path / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
    assert read_state(tmp_path / "metrics.json", "metrics") == {"BLEU": None, "dev": None, "NIST": 1.5}
    assert RunRecord(tmp_path).data["metrics"]["BLEU"] is None
    state = {"epoch": 1, "batch_in_epoch": 0, "global_step": 6, "finished": True, "dev_loss": {"1": float("nan")},
             "train_loss": {"1": 2.0}, "last_loss": float("nan")}
    atomic_write_json(tmp_path / "trainer_state.json", state)
    assert read_state(tmp_path / "trainer_state.json", "trainer_state")["dev_loss"] == {"1": None}
