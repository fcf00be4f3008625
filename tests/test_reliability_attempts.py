"""Reliability of run records (issue #17): force=true re-runs, attempts are listed not overwritten,
interrupted and dead launches are recorded as such, one writer per run directory, and bad inputs
(values, seeds, labels, damaged state files) are refused before training with the file/key and fix.

Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lodabench import io as lb_io
from lodabench.errors import ConfigError, DataError
from lodabench.paths import REPO_ROOT
from lodabench.run.records import RunRecord
from lodabench.run.attempts import UNRECORDED, attempt_hygiene, record_end
from lodabench.run.spine import RunInterrupted, interrupts_raise
from lodabench.run.runlock import RunLock
from runs_helpers import TINY_E2E, run_cli_here, run_dirs

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


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text())


# ----------------------------------------------------------------------------- force / attempts
@pytest.mark.slow
@rel(case="force=true on a complete run",
     done="tiny run to completion, then the same command with force=true",
     expect="training restarts at step 0 (no resume), hyp.txt is decoded anew, the earlier checkpoints/hyp/metrics "
            "lie in attempts/1/, record.json lists two attempts with commit, lock hash, packages, machine, outcome")
def test_force_reruns_from_step_zero(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    old_hyp_mtime = (run_dir / "hyp.txt").stat().st_mtime_ns
    proc = run_cli_here([*ARGS, "force=true"], results)  # the whole launch in this process
    assert "resumed from" not in proc.stdout + proc.stderr and "[lodabench] complete" in proc.stdout
    rec = _record(run_dir)
    assert [a["outcome"] for a in rec["attempts"]] == ["complete", "complete"]
    first, second = rec["attempts"]
    assert first["superseded_by_force"] and first["moved_to"] == "attempts/1"
    assert second["start"] == "step 0" and second["lock_sha256"] == rec["lock_sha256"]
    assert len(second["lock_sha256"]) == 64 and {"git", "lock", "packages", "machine", "started_at", "ended_at"} <= set(second)
    assert second["lock"] in ("requirements.lock", "requirements-cuda.lock")
    archived = run_dir / "attempts" / "1"
    for name in ("checkpoints", "hyp.txt", "metrics.json"):
        assert (archived / name).exists() and (run_dir / name).exists()
    assert (run_dir / "hyp.txt").stat().st_mtime_ns != old_hyp_mtime
    assert rec["train"]["global_step"] == 6  # trained all 6 steps again


@pytest.mark.slow
@rel(case="resume under another commit",
     done="an unfinished run (status failed, checkpoints present) whose attempt names another git commit; re-run, "
          "then re-run with allow_code_change=true",
     expect="exit 2: ConfigError naming the two commits, force=true and allow_code_change=true; with "
            "allow_code_change=true the run resumes and the new attempt records code_changed")
def test_resume_under_other_commit_is_refused(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    rec = _record(run_dir)
    rec["status"], rec["attempts"][-1]["git"]["commit"] = "failed", "0" * 40
    (run_dir / "record.json").write_text(json.dumps(rec))
    (run_dir / "metrics.json").unlink()
    proc = run_cli_here(ARGS, results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "000000000000 ->" in proc.stderr and "force=true" in proc.stderr and "allow_code_change=true" in proc.stderr
    run_cli_here([*ARGS, "allow_code_change=true"], results)  # the whole launch in this process
    last = _record(run_dir)["attempts"][-1]
    assert last["outcome"] == "complete" and last["start"] == "resume"
    assert last["code_changed"][0].startswith("git commit 000000000000 ->")


# ----------------------------------------------------------------------------- interruption
@pytest.mark.slow
@rel(case="SIGTERM during training",
     done="start a tiny run with a checkpoint every step, send SIGTERM once checkpoints/latest.json exists",
     expect="exit 143; record status interrupted, the attempt names SIGTERM and its last checkpoint; "
            "the same command then resumes and completes")
def test_sigterm_marks_interrupted(tmp_path, data_root, gpt2_tokenizer_dir):
    results = tmp_path / "results"
    args = [*ARGS, "trainer.checkpoint_every=1", "trainer.max_steps=400", "data.max_train_examples=3200"]
    env = {**os.environ, "LODABENCH_RESULTS_DIR": str(results), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    with open(tmp_path / "log", "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "lodabench", *args], cwd=REPO_ROOT, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(results.rglob("checkpoints/latest.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, (tmp_path / "log").read_text()[-2000:]
    (run_dir,) = run_dirs(results)
    rec = _record(run_dir)
    assert rec["status"] == "interrupted" and rec["attempts"][-1]["signal"] == "SIGTERM"
    assert rec["attempts"][-1]["last_checkpoint"].startswith("step-")


@rel(case="SIGINT / SIGHUP during a run",
     done="os.kill(own pid, SIGINT or SIGHUP) inside run.interrupts_raise()",
     expect="RunInterrupted naming the signal (the run records it as interrupted); handlers restored after")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_signals_raise_interrupted(signum):
    before = signal.getsignal(signum)
    with pytest.raises(RunInterrupted) as info:
        with interrupts_raise():
            os.kill(os.getpid(), signum)
            time.sleep(1)
    assert info.value.signal_name == signal.Signals(signum).name
    assert signal.getsignal(signum) == before


@rel(case="failure record cannot be written (disk full)",
     done="record.fail raises OSError(ENOSPC) while recording a failure; then the next launch's attempt_hygiene",
     expect="an .unrecorded-failure marker is left; the next launch prints that the previous attempt failed "
            "unrecorded, records it (outcome 'failed (recorded late)') and removes the marker")
def test_unrecordable_failure_leaves_marker(tmp_path, monkeypatch, capsys):
    record = RunRecord(tmp_path)
    record.start({"seed": 1}, 1, fresh=True)
    real = lb_io.atomic_write_json
    monkeypatch.setattr("lodabench.run.records.atomic_write_json",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    record_end(record, tmp_path, RuntimeError("boom"))
    assert (tmp_path / UNRECORDED).is_file() and "boom" in (tmp_path / UNRECORDED).read_text()
    monkeypatch.setattr("lodabench.run.records.atomic_write_json", real)
    attempt_hygiene(tmp_path)
    assert "could not be recorded" in capsys.readouterr().err
    rec = _record(tmp_path)
    assert rec["status"] == "failed" and rec["attempts"][-1]["outcome"] == "failed (recorded late)"
    assert not (tmp_path / UNRECORDED).exists()


@rel(case="record says running for a launch that died (kill -9) / orphan temporary files",
     done="a record with status running and a .record.json.x.tmp left in the run dir; next launch's attempt_hygiene",
     expect="the attempt becomes 'died', the run 'interrupted'; every .*.tmp file is removed")
def test_dead_running_record_and_orphan_tmp(tmp_path):
    RunRecord(tmp_path).start({"seed": 1}, 1, fresh=True)
    orphans = [tmp_path / ".record.json.abc123.tmp", tmp_path / "checkpoints" / ".latest.json.x.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_text("half")
    attempt_hygiene(tmp_path)
    rec = _record(tmp_path)
    assert rec["status"] == "interrupted" and rec["attempts"][-1]["outcome"] == "died"
    assert not any(o.exists() for o in orphans)


# ----------------------------------------------------------------------------- one writer
_HOLDER = ("import sys,time; sys.path.insert(0, sys.argv[2]); from lodabench.run.runlock import RunLock; "
           "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)")


@pytest.mark.slow  # needs the module's complete run, plus two CLI launches
@rel(case="second launch of a run while the first is alive",
     done="another process holds the run directory's lock; launch the same command; kill -9 the holder; launch again",
     expect="exit 2 at once naming the holder's PID and host; after the holder died its stale lock is taken over "
            "and the launch proceeds (here: skips the complete run)")
def test_second_launch_is_refused_then_stale_lock_taken(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir), str(REPO_ROOT / "src")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_cli_here(ARGS, results, check=False)
        assert proc.returncode == 2 and f"PID {holder.pid}" in proc.stderr and "in use" in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    proc = run_cli_here(ARGS, results)
    assert "[lodabench] skip (complete)" in proc.stdout
    lock = RunLock(run_dir)
    lock.acquire()  # released again by the finished launch
    lock.release()


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.slow  # a whole CLI run (decoding and scoring)
@rel(case="trainer.max_steps=0", done="python -m lodabench ... trainer.max_steps=0",
     expect="trains nothing (0 optimizer steps, like trainer.epochs=0) and evaluates the untrained model; "
            "never 'no limit'")
def test_max_steps_zero_trains_nothing(tmp_path, data_root, gpt2_tokenizer_dir):
    results = tmp_path / "results"
    run_cli_here([*[a for a in ARGS if not a.startswith("trainer.max_steps")], "trainer.max_steps=0"], results)
    (run_dir,) = run_dirs(results)
    rec = _record(run_dir)
    assert rec["train"]["total_steps"] == 0 and rec["train"]["global_step"] == 0
    assert rec["status"] == "complete"


@rel(case="learning rate zero, negative or not a number",
     done="python -m lodabench ... trainer.lr=0 (and trainer.lr=-1e-3 in-process)",
     expect="exit 2 before any training: 'trainer.lr=0: the learning rate must be a finite number > 0'")
def test_bad_lr_refused_before_training(tmp_path, data_root, gpt2_tokenizer_dir):
    from lodabench.train.trainer import check_trainer_values

    for bad in (-1e-3, float("nan"), "abc"):
        with pytest.raises(ConfigError, match=r"trainer\.lr[=:]"):  # a value check, or the schema's type check
            check_trainer_values({"lr": bad, "epochs": 1, "batch_size": 8, "max_steps": None})
    with pytest.raises(ConfigError, match="trainer.max_steps=-1"):
        check_trainer_values({"lr": 1e-3, "epochs": 1, "batch_size": 8, "max_steps": -1})
    results = tmp_path / "results"
    proc = run_cli_here([*ARGS, "trainer.lr=0"], results, check=False)
    assert proc.returncode == 2 and "trainer.lr=0" in proc.stderr and "> 0" in proc.stderr
    assert not list(results.rglob("checkpoints"))


@rel(case="seed that is not an integer", done="python -m lodabench seed=abc (and -m seed=110,abc)",
     expect="exit 2 naming seed=abc and how to give a seed; no seedabc/ directory is created")
def test_seed_not_integer(tmp_path):
    for args in (["seed=abc"], ["-m", "seed=110,abc"]):
        results = tmp_path / "results"
        proc = run_cli_here([*ARGS, *args], results, check=False)
        assert proc.returncode == 2 and "'abc' is not an integer" in proc.stderr
        assert not list(results.rglob("seedabc")) and not list(results.rglob("seed110"))


@rel(case="STS-B label NaN, infinite or outside [0, 5]",
     done="read_glue_tsv(stsb) on a dev.tsv whose 3rd line's score is nan / inf / 5.5 / -1",
     expect="DataError naming the file, line 3, the value and the range [0, 5]")
@pytest.mark.parametrize("value", ["nan", "inf", "5.5", "-1"])
def test_stsb_label_out_of_range(tmp_path, value):
    from lodabench.tasks.glue import SPECS, read_glue_tsv

    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tmain\tx\t2012\t0\tnone\tnone\tA man.\tA man.\t{}\n"
    path = tmp_path / "dev.tsv"
    path.write_text(head + row.format("5.000") + row.format(value))
    with pytest.raises(DataError, match=rf"{path}: line 3: label '{value}' is outside \[0, 5\]"):
        read_glue_tsv(SPECS["stsb"], path)


@pytest.mark.slow  # needs the module's complete run
@rel(case="damaged record.json", done="truncate a complete run's record.json; re-run the command",
     expect="exit 2: DataError naming record.json, 'is damaged' and what to do (delete it); no raw JSONDecodeError")
def test_damaged_record_json(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    text = (run_dir / "record.json").read_text()
    (run_dir / "record.json").write_text(text[: len(text) // 2])
    proc = run_cli_here(ARGS, results, check=False)
    assert proc.returncode == 2 and "record.json is damaged" in proc.stderr and "delete it" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@rel(case="damaged checkpoints/latest.json or trainer_state.json",
     done="an unfinished run (status failed, checkpoints kept) whose latest.json / trainer_state.json is truncated; "
          "re-run the command",
     expect="exit 2: CheckpointError naming the damaged file and which directory to delete to restart; no traceback")
@pytest.mark.parametrize("victim", ["latest.json", "trainer_state.json"])
def test_damaged_checkpoint_json(done, tmp_path, victim):
    results, run_dir = _copy(done, tmp_path)
    rec = _record(run_dir)
    rec["status"] = "failed"
    (run_dir / "record.json").write_text(json.dumps(rec))
    (run_dir / "metrics.json").unlink()
    ckpt = run_dir / "checkpoints"
    target = ckpt / victim if victim == "latest.json" else ckpt / json.loads(
        (ckpt / "latest.json").read_text())["dir"] / victim
    target.write_text('{"dir": "step-')
    proc = run_cli_here(ARGS, results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{victim} is damaged" in proc.stderr and "delete" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- identity / multirun
def test_eval_checkpoint_is_part_of_the_run_identity():
    """Two values of eval_checkpoint never share a run directory."""
    import lodabench.config.run_names  # noqa: F401  lb_slug resolver
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from lodabench.paths import CONF_DIR

    dirs = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for value in ("last", "best_dev"):
            cfg = compose(config_name="config", overrides=[f"eval_checkpoint={value}"], return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            dirs.append(str(cfg.run_dir))
    GlobalHydra.instance().clear()
    assert dirs[0] != dirs[1] and "eval_checkpoint=best_dev" in dirs[1]
