"""Reliability: faults and bad inputs never lose a finished result, and always say what to fix.

Every test is one row of ``results/reliability.md`` (written by tests/conftest.py at the end of the
session from the ``@pytest.mark.reliability`` markers). Three groups:

* Faults: a real SIGKILL of a training run, a crash in decoding, a crash in scoring, a crash while
  writing a file or a checkpoint, an unwritable/full results disk, one failing job of a multirun.
  The resumed run must end with exactly the adapter weights and metrics of an uninterrupted run.
* Bad inputs: each must stop with a LodabenchError (or Hydra's own message for the config tree)
  naming the file/key/value and the fix, before any training when it can be known then (no
  ``checkpoints/`` directory is created).
* Safety audit (see ``test_nothing_from_a_config_is_executed_or_downloaded`` for what was audited).

Runtime: the CLI runs share two module fixtures (an uninterrupted reference, a multirun that also
holds the failing job; and one fault chain kill -9 -> decode crash -> scoring crash -> finish);
everything that the CLI adds nothing to is checked in-process with tiny models.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lodabench import methods
from lodabench.errors import CheckpointError, ConfigError, DataError, ScoringError, TrainingDiverged
from lodabench.io import atomic_write_json, atomic_write_text, atomic_write_with, safe_rmtree
from lodabench.paths import CONF_DIR, REPO_ROOT
from lodabench.config.schema import defaults_of
from methods_tiny import tiny
from runs_helpers import TINY_E2E, final_weights, run_cli, run_cli_here, run_dirs

torch.set_num_threads(1)
rel = pytest.mark.reliability

# One decoding batch = one fsynced chunk of hyp.partial.jsonl: 6 eval items -> 3 chunks of 2.
# decoding.batch_size is excluded from the run-directory name, so all runs below share one layout.
REF_ARGS = [*TINY_E2E, "decoding.batch_size=2"]
N_ITEMS = 6


def _popen(args: list[str], results: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LODABENCH_RESULTS_DIR": str(results), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    with open(log, "w") as fh:  # a file, not a pipe nobody reads while we poll
        return subprocess.Popen([sys.executable, "-m", "lodabench", *args], cwd=REPO_ROOT, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)


def _no_training_started(results: Path) -> None:
    assert not list(results.rglob("checkpoints")), "training must not start on a bad input"


def _trainer_cfg(**over):
    cfg = defaults_of("trainer")
    cfg.update(epochs=1, batch_size=2, warmup_steps=0, progress=False, eval_dev_loss=False, lr=1e-2,
               keep_epoch_checkpoints=False)
    cfg.update(over)
    return cfg


def _tiny_trainer(run_dir: Path, method: dict | None = None, loss_hook=None, **over):
    """A real Trainer on a tiny GPT-2 with a method applied and 8 random token sequences."""
    from lodabench.train.trainer import Trainer

    model = methods.apply_method(tiny("gpt2"), method or {"name": "lora", "r": 4})
    g = torch.Generator().manual_seed(0)
    examples = [torch.randint(3, 250, (10,), generator=g) for _ in range(8)]

    def loss_fn(m, batch):
        logits = m(input_ids=batch["input_ids"]).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 batch["input_ids"][:, 1:].reshape(-1))
        return loss_hook(loss) if loss_hook else loss

    return Trainer(model, _trainer_cfg(**over), seed=1, run_dir=run_dir, train_examples=examples,
                   collate=lambda xs: {"input_ids": torch.stack(xs)}, loss_fn=loss_fn)


# ============================================================================ shared CLI runs


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root, gpt2_tokenizer_dir):
    """A multirun `method.r=0,8`: r=0 fails (bad value), r=8 is the uninterrupted reference run."""
    results = tmp_path_factory.mktemp("reference")
    args = [a for a in REF_ARGS if not a.startswith("method.r=")]
    proc = run_cli_here(["-m", *args, "method.r=0,8"], results, check=False)
    dirs = {json.loads((d / "record.json").read_text())["config"]["method"]["r"]: d for d in run_dirs(results)}
    return {"results": results, "proc": proc, "ok": dirs[8], "failed": dirs[0]}


def _java_that_breaks(where: Path) -> Path:
    """A `java` that answers preflight's `java -version` probe and fails any real work (a jar run)."""
    script = where / "java-breaks-after-probe"
    script.write_text('#!/bin/sh\nif [ "$1" = "-version" ]; then exec java -version; fi\n'
                      'echo "java-breaks-after-probe: broken after the preflight probe" >&2\nexit 1\n')
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def chain(tmp_path_factory, data_root, gpt2_tokenizer_dir):
    """One run through every fault: SIGKILL in training, crash in decoding, crash in scoring, finish.

    Returns what was observed after each attempt (the assertions are in the tests below).
    """
    results = tmp_path_factory.mktemp("chain")
    obs: dict = {"results": results}
    # 1. kill -9 as soon as the first resumable checkpoint is on disk.
    log = results.parent / f"{results.name}-attempt1.log"
    proc = _popen(REF_ARGS, results, log)
    deadline = time.time() + 300
    pointer = None
    while time.time() < deadline and proc.poll() is None:
        found = list((results / "runs").rglob("checkpoints/latest.json")) if (results / "runs").is_dir() else []
        if found:
            pointer = found[0]
            break
        time.sleep(0.02)
    assert pointer is not None, f"no checkpoint appeared; exit {proc.poll()}: {log.read_text()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    obs["killed_rc"] = proc.returncode
    run_dir = pointer.parent.parent
    obs["run_dir"] = run_dir
    obs["after_kill"] = {"pointer": json.loads(pointer.read_text()),
                         "status": json.loads((run_dir / "record.json").read_text())["status"],
                         "hyp": (run_dir / "hyp.txt").is_file()}
    # 2. resume; training finishes, then the process dies after the first decode chunk.
    p2 = run_cli(REF_ARGS, results, env={"LODABENCH_FAULT_AFTER_DECODE_CHUNK": "1"}, check=False)
    partial = run_dir / "hyp.partial.jsonl"
    obs["decode_crash"] = {"rc": p2.returncode, "out": p2.stdout + p2.stderr, "hyp": (run_dir / "hyp.txt").is_file(),
                           "partial": len(partial.read_text().splitlines()) if partial.is_file() else 0}
    ckpt = run_dir / "checkpoints" / json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]
    obs["ckpt_state_after_training"] = json.loads((ckpt / "trainer_state.json").read_text())
    # 3. resume with a Java that breaks after preflight's probe (`java -version` works, every jar run
    # fails): decoding completes (only the missing items), scoring fails. A Java that is missing from
    # the start is refused by preflight before anything runs (test_missing_java_is_refused_in_preflight).
    p3 = run_cli(REF_ARGS, results, env={"LODABENCH_JAVA": str(_java_that_breaks(results.parent))}, check=False)
    obs["score_crash"] = {"rc": p3.returncode, "out": p3.stdout + p3.stderr,
                          "hyp": (run_dir / "hyp.txt").read_text(encoding="utf-8") if (run_dir / "hyp.txt").is_file() else None,
                          "record": json.loads((run_dir / "record.json").read_text()),
                          "mtimes": {p.name: p.stat().st_mtime_ns for p in [*ckpt.iterdir(), run_dir / "hyp.txt"]
                                     if p.is_file()}}
    # 4. the same command again: re-scores only (this launch in this process: its imports are paid).
    p4 = run_cli_here(REF_ARGS, results)
    obs["final"] = {"out": p4.stdout + p4.stderr, "record": json.loads((run_dir / "record.json").read_text()),
                    "mtimes": {p.name: p.stat().st_mtime_ns for p in [*ckpt.iterdir(), run_dir / "hyp.txt"]
                               if p.is_file()}}
    return obs


# ============================================================================ faults


@pytest.mark.slow
@rel(case="kill -9 during a run, then the same command again",
     done="SIGKILL the CLI right after checkpoints/latest.json appears; re-run (3 more attempts, see the next rows)",
     expect="resumes from the last checkpoint; final adapter weights and metrics identical to an uninterrupted run")
def test_kill9_then_rerun_equals_uninterrupted(chain, reference):
    assert chain["killed_rc"] == -signal.SIGKILL
    assert chain["after_kill"]["status"] == "running" and chain["after_kill"]["pointer"]["global_step"] >= 2
    assert not chain["after_kill"]["hyp"]
    run_dir, ref_dir = chain["run_dir"], reference["ok"]
    # (Not compared: the directory names. Hydra's multirun re-serialises `trainer.lr=1e-2` as 0.01, so
    # the reference multirun job lands in another <overrides> slug than the single run; see the report.)
    assert "resumed from" in chain["decode_crash"]["out"]
    ref_w, res_w = final_weights(ref_dir), final_weights(run_dir)
    assert ref_w.keys() == res_w.keys() and ref_w
    for key in ref_w:
        torch.testing.assert_close(res_w[key], ref_w[key], rtol=0, atol=0)
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads((ref_dir / "metrics.json").read_text())
    final = chain["final"]["record"]
    outcomes = [a["outcome"] for a in final["attempts"]]
    assert final["status"] == "complete" and len(outcomes) == 4, outcomes
    assert outcomes[0] == "died" and outcomes[-1] == "complete" and "running" not in outcomes


@pytest.mark.slow
@rel(case="crash during decoding",
     done="LODABENCH_FAULT_AFTER_DECODE_CHUNK=1 (exit right after the first 2 of 6 hypotheses are fsynced); re-run",
     expect="the re-run decodes only the 4 missing items and writes the same hyp.txt as an uninterrupted run")
def test_decode_crash_decodes_only_missing(chain, reference):
    crash = chain["decode_crash"]
    assert crash["rc"] == 76, crash["out"][-2000:]
    assert not crash["hyp"] and crash["partial"] == 2
    assert chain["ckpt_state_after_training"]["finished"] is True
    out = chain["score_crash"]["out"]
    assert f"decoding: 2 of {N_ITEMS} already done, {N_ITEMS - 2} to go" in out
    assert not (chain["run_dir"] / "hyp.partial.jsonl").exists()
    ref_hyp = (reference["ok"] / "hyp.txt").read_text(encoding="utf-8")
    assert chain["score_crash"]["hyp"] == ref_hyp == (chain["run_dir"] / "hyp.txt").read_text(encoding="utf-8")
    assert len(ref_hyp.splitlines()) == N_ITEMS


@pytest.mark.slow
@rel(case="crash during scoring (Java breaks after the preflight probe)",
     done="LODABENCH_JAVA=<a java that answers -version, fails every jar run>; then the same command with Java",
     expect="exit 2 naming the failed scorer step, record failed; the re-run re-scores without retraining or re-decoding")
def test_scoring_crash_rescores_only(chain, reference):
    crash = chain["score_crash"]
    assert crash["rc"] == 2
    assert "failed on the references" in crash["out"] and "broken after the preflight probe" in crash["out"]
    assert crash["record"]["status"] == "failed" and "ScoringError" in crash["record"]["error"]
    final = chain["final"]
    assert final["mtimes"] == crash["mtimes"]                 # checkpoint files and hyp.txt untouched
    assert "decoding:" not in final["out"] and "dev loss" not in final["out"]  # no training, no decoding
    assert final["record"]["metrics"] == json.loads((reference["ok"] / "metrics.json").read_text())


@pytest.mark.slow
@rel(case="no Java for the scorer", done="LODABENCH_JAVA=/nonexistent/java (tiny E2E run)",
     expect="exit 2 in preflight naming java and the fix (install or LODABENCH_JAVA); no model loaded, no checkpoint")
def test_missing_java_is_refused_in_preflight(tmp_path):
    proc = run_cli(REF_ARGS, tmp_path, env={"LODABENCH_JAVA": "/nonexistent/java"}, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "/nonexistent/java" in proc.stderr and "LODABENCH_JAVA" in proc.stderr
    assert not list(tmp_path.rglob("checkpoints")) and "trainable" not in proc.stdout + proc.stderr


@rel(case="crash while writing a file",
     done="lodabench.io.atomic_write_with / atomic_write_text with a writer that raises after writing half",
     expect="the previous complete file is still there, byte for byte; no temporary file is left")
def test_atomic_write_keeps_previous_file(tmp_path):
    target = tmp_path / "record.json"
    atomic_write_json(target, {"status": "complete", "metrics": {"BLEU": 0.5}})
    before = target.read_bytes()

    def half_then_crash(tmp: Path) -> None:
        tmp.write_text('{"status": "runn')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write_with(target, half_then_crash)
    assert target.read_bytes() == before
    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, lambda tmp: (tmp.write_text("x"), (_ for _ in ()).throw(KeyboardInterrupt())))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


@rel(case="crash while writing a checkpoint",
     done="a real Trainer saves step 1; saving step 2 dies half way through trainable.safetensors",
     expect="checkpoints/latest.json still names step 1, whose files are complete; a new Trainer resumes at step 1")
def test_checkpoint_crash_keeps_previous_checkpoint(tmp_path, monkeypatch):
    trainer = _tiny_trainer(tmp_path)
    trainer.state.global_step = 1
    trainer.save_checkpoint()
    good = trainer.ckpt_dir / "step-0000001"
    import lodabench.methods.checkpoint as C

    real_save_file = C.save_file

    def dying_save_file(tensors, filename, metadata=None):  # the disk fills half way through the file
        real_save_file(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(C, "save_file", dying_save_file)
    trainer.state.global_step = 2
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint()
    monkeypatch.setattr(C, "save_file", real_save_file)
    assert not (trainer.ckpt_dir / "step-0000002" / "trainable.safetensors").exists()
    assert json.loads((trainer.ckpt_dir / "latest.json").read_text()) == {"dir": "step-0000001", "global_step": 1}
    assert {p.name for p in good.iterdir()} == {"trainable.safetensors", "optimizer.pt", "trainer_state.json"}
    fresh = _tiny_trainer(tmp_path)
    assert fresh.try_resume() and fresh.state.global_step == 1


@pytest.mark.slow
@rel(case="results directory unwritable",
     done="paths.results_dir=<tmp>/file.txt/sub (a path under a regular file; chmod does not stop root)",
     expect="exit 2 before Hydra or training touch anything: names the directory, the OS error and paths.results_dir")
def test_unwritable_results_dir(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    bad = blocker / "sub"
    proc = run_cli_here([*REF_ARGS, f"paths.results_dir={bad}"], tmp_path / "unused", check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"results directory {bad} is not writable (Not a directory" in proc.stderr
    assert "set paths.results_dir=<writable dir>" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert blocker.read_text() == "not a directory"


@rel(case="disk full",
     done="shutil.disk_usage reports 10 MiB free (monkeypatched) for run.check_writable, called before training",
     expect="ConfigError naming the directory, the free space, the minimum and paths.results_dir")
def test_disk_full_is_refused(tmp_path, monkeypatch):
    from collections import namedtuple

    from lodabench.run import spine as R
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(R.shutil, "disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30 - 10 * 2**20, 10 * 2**20))
    with pytest.raises(ConfigError) as err:
        R.check_writable(tmp_path / "run")
    msg = str(err.value)
    assert "only 10 MiB free" in msg and str(tmp_path / "run") in msg
    assert f"at least {R.MIN_FREE_MB} MiB" in msg and "paths.results_dir" in msg


@pytest.mark.slow
@rel(case="one failing job in a multirun",
     done="python -m lodabench -m ... method.r=0,8 (r=0 invalid, runs first); then lodabench.results.tables.build",
     expect="the r=8 job still completes; the sweep then exits 1 printing the failed job's run dir and error; "
            "the r=0 row is marked failed† with the error in the footnote")
def test_multirun_failed_job_is_marked(reference, tmp_path):
    from lodabench.results import tables
    failed = json.loads((reference["failed"] / "record.json").read_text())
    assert failed["status"] == "failed" and "method.r=0" in failed["error"]
    proc = reference["proc"]  # the sweep finished the other job, then exits 1 with a summary of the failed ones
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "1 job(s) of this multirun failed" in proc.stderr and str(reference["failed"]) in proc.stderr
    assert not (reference["failed"] / "checkpoints").exists()
    assert json.loads((reference["ok"] / "record.json").read_text())["status"] == "complete"
    written = tables.build(reference["results"] / "runs", tmp_path, None, plots=False)
    md = next(p for p in written["table1_e2e__tiny-gpt2"] if p.suffix == ".md").read_text(encoding="utf-8")
    row_r0 = next(line for line in md.splitlines() if line.startswith("| LoRA") and re.search(r"\br=0\b", line))
    row_r8 = next(line for line in md.splitlines() if line.startswith("| LoRA") and re.search(r"\br=8\b", line))
    assert "failed†" in row_r0 and "†" in row_r0.split("|")[1]
    assert "failed" not in row_r8 and re.search(r"\| \d+\.\d+", row_r8)
    assert "must be a positive integer" in md  # the footnote carries the error


@pytest.mark.slow
@rel(case="overlay edited after a run finished (same command line, other values)",
     done="copy a complete run, change trainer.lr in its record (as if made by an older overlay), re-run the command",
     expect="exit 2, ConfigError naming the run directory and 'trainer.lr: recorded 0.5, now 0.01'; the record is "
            "untouched. A difference in an operational key only (trainer.progress) still skips the complete run")
def test_changed_config_is_not_skipped_or_resumed(reference, tmp_path):
    import shutil

    rel_dir = reference["ok"].relative_to(reference["results"])
    run_dir = tmp_path / rel_dir
    shutil.copytree(reference["ok"], run_dir)
    args = [*[a for a in REF_ARGS if not a.startswith("method.r=")], "method.r=8"]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["config"]["trainer"]["lr"] == 1e-2
    record["config"]["trainer"]["lr"] = 0.5
    atomic_write_json(run_dir / "record.json", record)
    before = (run_dir / "record.json").read_bytes()
    proc = run_cli_here(args, tmp_path, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"run directory {run_dir}" in proc.stderr and "trainer.lr: recorded 0.5, now 0.01" in proc.stderr
    assert "delete or move that directory" in proc.stderr
    assert (run_dir / "record.json").read_bytes() == before

    record["config"]["trainer"]["lr"] = 1e-2
    record["config"]["trainer"]["progress"] = True
    atomic_write_json(run_dir / "record.json", record)
    proc = run_cli_here(args, tmp_path, timeout=300)
    assert "[lodabench] skip (complete)" in proc.stdout


def test_config_conflicts_ignore_added_and_operational_keys():
    from lodabench.run.records import config_conflicts

    old = {"trainer": {"lr": 1e-3, "epochs": 1, "progress": False}, "method": {"name": "lora", "r": 4}, "seed": 1,
           "paths": {"runs_dir": "a"}}
    new = {"trainer": {"lr": 1e-3, "epochs": 3, "progress": True, "a_future_knob": 5, "group_by_length": False},
           "method": {"name": "lora", "r": 8}, "seed": 1, "paths": {"runs_dir": "b"}}
    assert config_conflicts(old, new) == ["method.r: recorded 4, now 8", "trainer.epochs: recorded 1, now 3"]
    assert config_conflicts({}, new) == [] and config_conflicts(old, old) == []


def test_config_conflicts_catch_an_added_key_set_away_from_the_old_behaviour():
    """A record written before model.pooler / trainer.group_by_length existed ran with CLS pooling and
    no length grouping: the old default is not a conflict, another value is."""
    from lodabench.run.records import config_conflicts

    old = {"model": {"name": "minilm-l6"}, "trainer": {"lr": 1e-3}}
    same = {"model": {"name": "minilm-l6", "pooler": "cls"}, "trainer": {"lr": 1e-3, "group_by_length": False}}
    assert config_conflicts(old, same) == []
    changed = {"model": {"name": "minilm-l6", "pooler": "mean"}, "trainer": {"lr": 1e-3, "group_by_length": True}}
    conflicts = config_conflicts(old, changed)
    assert len(conflicts) == 2
    assert conflicts[0].startswith("model.pooler: recorded absent (= 'cls'") and conflicts[0].endswith("now 'mean'")
    assert conflicts[1].startswith("trainer.group_by_length: recorded absent (= False")


# ============================================================================ bad inputs: config


@pytest.mark.parametrize("override,group,choice", [("model=gpt3-nano", "model", "tiny-gpt2"),
                                                   ("method=NOT_A_METHOD", "method", "lora"),
                                                   ("data=e2e_clean", "data", "e2e")])
@rel(case="unknown model/method/data name", done="python -m lodabench <group>=<unknown>",
     expect="exit 2 before Hydra starts: 'Could not find <group>/<name>' and the list of available options; "
            "no run directory")
def test_unknown_group_choice(override, group, choice, tmp_path):
    proc = run_cli_here([override], tmp_path, check=False, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and proc.stderr.startswith("lodabench: error: ")
    name = override.split("=")[1]
    assert f"Could not find '{group}/{name}'" in out and f"Available options in '{group}'" in out
    assert re.search(rf"^\s+{re.escape(choice)}$", out, re.M)
    assert not (tmp_path / "runs").exists()


@rel(case="mistyped config key (Hydra level)", done="python -m lodabench trainer.lrr=1",
     expect="exit 2 before Hydra starts, one line naming trainer.lrr and its schema (Key 'lrr' not in "
            "'TrainerConfig'); no run directory")
def test_mistyped_trainer_key(tmp_path):
    proc = run_cli_here(["trainer.lrr=1"], tmp_path, check=False, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "Could not override 'trainer.lrr'" in out and "Key 'lrr' not in 'TrainerConfig'" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@rel(case="unknown method key (added with +)", done="python -m lodabench +method.rr=4 (tiny run)",
     expect="exit 2 before Hydra makes a directory: 'unknown config key method.rr' listing method=lora's keys "
            "(the schema check of the composed config); no run directory, no checkpoints")
def test_unknown_method_key(tmp_path):
    proc = run_cli_here([*REF_ARGS, "+method.rr=4"], tmp_path, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown config key method.rr: not in the schema of its group. Valid keys there: name, r, alpha" in proc.stderr
    assert not run_dirs(tmp_path) and not (tmp_path / "runs").exists()


@rel(case="rank r <= 0", done="method_config({'name': 'lora', 'r': 0}) and r=-3",
     expect="ConfigError 'method.r=0: must be a positive integer. Fix: set method.r to an integer >= 1'")
def test_rank_not_positive():
    for r in (0, -3):
        with pytest.raises(ConfigError, match=rf"method\.r={r}: must be a positive integer\. Fix: set method\.r to an integer >= 1"):
            methods.method_config({"name": "lora", "r": r})


@rel(case="rank r larger than the layer", done="apply_method(tiny GPT-2 with d=64, lora r=65)",
     expect="ConfigError names method.r=65, the q projection's min(in, out)=64 and 'set method.r <= 64'; model untouched")
def test_rank_exceeds_layer_dimension():
    model = tiny("gpt2")
    with pytest.raises(ConfigError) as err:
        methods.apply_method(model, {"name": "lora", "r": 65})
    assert "method.r=65" in str(err.value) and "=64" in str(err.value) and "set method.r <= 64" in str(err.value)
    assert methods.method_of(model) is None and all(p.requires_grad for p in model.parameters())


@rel(case="R-LoDA rank above min(d, 3d)", done="method_config(r_loda rank=65, tiny GPT-2 d=64, W_proj 64x192)",
     expect="ConfigError names method.rank=65, min(d_in=64, d_q+d_k+d_v=192)=64 and 'set method.rank <= 64'")
def test_r_loda_rank_too_large():
    with pytest.raises(ConfigError) as err:
        methods.method_config({"name": "r_loda", "rank": 65}, tiny("gpt2"))
    msg = str(err.value)
    assert "method.rank=65" in msg and "min(d_in=64, d_q+d_k+d_v=192)=64" in msg and "set method.rank <= 64" in msg
    methods.method_config({"name": "r_loda", "rank": 64}, tiny("gpt2"))  # the limit itself is fine


@pytest.mark.parametrize("keep", [0.0, -0.2, 1.5, float("nan")])
@rel(case="S-LoDA keep fraction outside (0, 1]", done="method_config(s_loda keep=<value>)",
     expect="ConfigError 'method.keep=<value>: must lie in (0, 1]. Fix: set method.keep to a value in (0, 1]'")
def test_keep_fraction_out_of_range(keep):
    with pytest.raises(ConfigError, match=r"method\.keep=.*must lie in \(0, 1\]\. Fix: set method\.keep to a value in \(0, 1\]"):
        methods.method_config({"name": "s_loda", "keep": keep})
    methods.method_config({"name": "s_loda", "keep": 1.0})


@rel(case="method that does not apply to the model", done="apply_method(tiny LLaMA, bitfit) (LLaMA has no biases)",
     expect="ConfigError 'method=bitfit does not apply to model family llama (it applies to gpt2, bert, roberta)'; raised before the model is touched")
def test_method_not_applicable_to_model():
    model = tiny("llama")
    with pytest.raises(ConfigError, match=r"method=bitfit does not apply to model family 'llama' "
                                          r"\(it applies to gpt2, bert, roberta\)\. Fix: pick another method or model"):
        methods.apply_method(model, {"name": "bitfit"})
    assert methods.method_of(model) is None and all(p.requires_grad for p in model.parameters())


# ============================================================================ bad inputs: data


@rel(case="missing data root", done="paths.data_root=/nonexistent (resolve_data_root, called before the model loads)",
     expect="DataError naming '/nonexistent', paths.data_root / LODABENCH_DATA_ROOT and the hub fallback")
def test_missing_data_root():
    from lodabench.paths import resolve_data_root

    with pytest.raises(DataError) as err:
        resolve_data_root("/nonexistent")
    msg = str(err.value)
    assert "'/nonexistent' does not exist" in msg and "paths.data_root=<dir>" in msg and "LODABENCH_DATA_ROOT" in msg


@pytest.mark.slow
@rel(case="missing split file", done="paths.data_root=<dir with e2e/trainset.csv, devset.csv but no testset_w_refs.csv>",
     expect="exit 2 BEFORE training (fixed: eval data now loads first): names the missing file and where to download it; no checkpoints")
def test_missing_split_file_fails_before_training(tmp_path, data_root):
    root = tmp_path / "data"
    (root / "e2e").mkdir(parents=True)
    for name in ("trainset.csv", "devset.csv"):
        (root / "e2e" / name).symlink_to(data_root / "e2e" / name)
    proc = run_cli_here([*REF_ARGS, "data.eval_split=test", f"paths.data_root={root}"], tmp_path / "results",
                   check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"E2E file not found: {root / 'e2e' / 'testset_w_refs.csv'}" in proc.stderr
    assert "https://github.com/tuetschek/e2e-dataset" in proc.stderr
    _no_training_started(tmp_path / "results")


@pytest.mark.parametrize("content,line,what", [
    ("mr\nname[A]\n", 1, "header is ['mr'], expected ['mr', 'ref']"),
    ('mr,ref\n"name[A]",ok\n"name[B]","bad "quote" here"\n', 3, "bad CSV quoting"),
    ("mr,ref\nname[A],ok\nname[B],one,two\n", 3, "3 column(s), expected 2 (mr, ref)"),
])
@rel(case="malformed E2E CSV", done="read_e2e_csv on a CSV with a missing column / bad quoting / an extra column",
     expect="DataError naming the file, the line number and what is wrong")
def test_malformed_e2e_csv(tmp_path, content, line, what):
    from lodabench.tasks.e2e import read_e2e_csv

    path = tmp_path / "trainset.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_e2e_csv(path)
    assert f"{path}: line {line}: " in str(err.value) and what in str(err.value)


@rel(case="DART JSON not in the v1.1.1 schema",
     done="read_dart_json on [{'tripleset': [...]}] (no annotations) and on a triple of 2 strings",
     expect="DataError naming the file, the entry index and the missing/bad key")
def test_dart_json_schema(tmp_path):
    from lodabench.tasks.dart import read_dart_json

    path = tmp_path / "dart-v1.1.1-full-train.json"
    ok = {"tripleset": [["A", "B", "C"]], "annotations": [{"source": "WikiSQL", "text": "A B C."}]}
    path.write_text(json.dumps([ok, {"tripleset": [["A", "B", "C"]]}]))
    with pytest.raises(DataError, match=re.escape(f"{path}: entry 1: missing key 'annotations'")):
        read_dart_json(path)
    path.write_text(json.dumps([ok, {**ok, "tripleset": [["A", "B"]]}]))
    with pytest.raises(DataError, match=re.escape(f"{path}: entry 1: tripleset[0] = ['A', 'B'] is not a list of 3 strings")):
        read_dart_json(path)


@rel(case="GLUE TSV with a wrong column count", done="read_glue_tsv(sst2) on a TSV whose 3rd line has 3 columns",
     expect="DataError naming the file, line 3, the column count found and expected")
def test_glue_tsv_wrong_columns(tmp_path):
    from lodabench.tasks.glue import SPECS, read_glue_tsv

    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: line 3: 3 column(s), expected 2 (sst2, tab-separated)")):
        read_glue_tsv(SPECS["sst2"], path)


# ============================================================================ bad inputs: scoring


@rel(case="hypothesis/reference count mismatch", done="lodabench score e2e --hyp <2 lines> --refs <3 groups>",
     expect="exit 2, names both files, both counts and the alignment rule; nothing printed on stdout")
def test_score_count_mismatch(tmp_path, capsys):
    from lodabench.cli import main

    hyp, refs = tmp_path / "hyp.txt", tmp_path / "refs.txt"
    hyp.write_text("a\nb\n")
    refs.write_text("r1\n\nr2\nr2b\n\nr3\n")
    assert main(["score", "e2e", "--hyp", str(hyp), "--refs", str(refs)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert (f"hypotheses file {hyp} has 2 hypotheses but references file {refs} has 3 reference groups" in out.err)
    assert "line i of the hypotheses must be the output for reference group i" in out.err


@rel(case="empty hypotheses file", done="lodabench score e2e --hyp <empty file>",
     expect="exit 2, 'hypotheses file <path> is empty: expected one output per line'")
def test_score_empty_hypotheses(tmp_path, capsys):
    from lodabench.cli import main

    hyp, refs = tmp_path / "hyp.txt", tmp_path / "refs.txt"
    hyp.write_text("")
    refs.write_text("r1\n\nr2\n")
    assert main(["score", "e2e", "--hyp", str(hyp), "--refs", str(refs)]) == 2
    assert f"hypotheses file {hyp} is empty: expected one output per line" in capsys.readouterr().err


@rel(case="Java missing for METEOR", done="LODABENCH_JAVA unset and PATH without java; require_java() and score_e2e()",
     expect="ScoringError 'java not found on PATH' + how to install it or set LODABENCH_JAVA, before any scoring work")
def test_java_missing(tmp_path, monkeypatch):
    from lodabench.scoring import java
    from lodabench.scoring.e2e import score_e2e

    monkeypatch.delenv("LODABENCH_JAVA", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    java.java_executable.cache_clear()
    try:
        with pytest.raises(ScoringError) as err:
            java.require_java()
        assert "java not found on PATH" in str(err.value)
        assert "apt-get install default-jre-headless" in str(err.value) and "LODABENCH_JAVA" in str(err.value)
        with pytest.raises(ScoringError, match="java not found on PATH"):
            score_e2e(["a"], [["a"]])
    finally:
        java.java_executable.cache_clear()


# ============================================================================ bad inputs: training


@rel(case="NaN/inf loss", done="real Trainer, checkpoint every step; the loss of optimizer step 3 is NaN (injected)",
     expect="TrainingDiverged naming step 3 and the fix (lower trainer.lr, grad_clip); latest.json still names the good step-2 checkpoint")
def test_nan_loss_stops_and_keeps_last_good(tmp_path):
    calls = {"n": 0}

    def poison(loss):
        calls["n"] += 1
        return loss * float("nan") if calls["n"] == 3 else loss

    trainer = _tiny_trainer(tmp_path, loss_hook=poison, checkpoint_every=1, max_steps=4)
    with pytest.raises(TrainingDiverged) as err:
        trainer.train()
    msg = str(err.value)
    assert "loss is nan at optimizer step 3" in msg and str(trainer.ckpt_dir) in msg
    assert "Lower trainer.lr" in msg and "trainer.grad_clip" in msg
    assert json.loads((trainer.ckpt_dir / "latest.json").read_text())["global_step"] == 2
    weights = final_weights(tmp_path)
    assert weights and all(torch.isfinite(t).all() for t in weights.values())


@rel(case="lr so large the loss diverges", done="real Trainer with trainer.lr=1e30",
     expect="TrainingDiverged naming the step at which the loss became non-finite; nothing after it is saved")
def test_huge_lr_diverges_with_step(tmp_path):
    trainer = _tiny_trainer(tmp_path, lr=1e30, checkpoint_every=1, max_steps=6)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf|-inf) at optimizer step (\d+)") as err:
        trainer.train()
    step = int(re.search(r"optimizer step (\d+)", str(err.value)).group(1))
    assert json.loads((trainer.ckpt_dir / "latest.json").read_text())["global_step"] == step - 1


@rel(case="truncated checkpoint", done="train 2 steps, truncate checkpoints/step-*/trainable.safetensors to half, re-run",
     expect="CheckpointError naming the file, that it may be truncated, and the fix (delete <run>/checkpoints to restart)")
def test_truncated_checkpoint(tmp_path):
    _tiny_trainer(tmp_path, checkpoint_every=1, max_steps=2).train()
    path = tmp_path / "checkpoints" / "step-0000002" / "trainable.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        _tiny_trainer(tmp_path, checkpoint_every=1, max_steps=2).train()
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg
    assert f"delete {tmp_path / 'checkpoints'}" in msg


@rel(case="checkpoint of another method", done="copy a lora run's checkpoints/ into a loda r=8 run directory, re-run",
     expect="CheckpointError: the file was saved by method=lora, the model has method=loda; how to fix")
def test_checkpoint_of_another_method(tmp_path):
    import shutil

    _tiny_trainer(tmp_path / "lora", checkpoint_every=1, max_steps=1).train()
    shutil.copytree(tmp_path / "lora" / "checkpoints", tmp_path / "loda" / "checkpoints")
    with pytest.raises(CheckpointError) as err:
        _tiny_trainer(tmp_path / "loda", method={"name": "loda", "r": 8}, checkpoint_every=1, max_steps=1).train()
    msg = str(err.value)
    assert "step-0000001/trainable.safetensors was saved by method=lora" in msg
    assert "the model has method=loda (r=8" in msg and "Fix: build the model with method=lora" in msg
    assert "delete" in msg


@rel(case="checkpoint of another rank", done="copy a lora r=4 run's checkpoints/ into a lora r=8 run directory, re-run",
     expect="CheckpointError naming method.r: checkpoint 4 vs model 8 and the fix")
def test_checkpoint_of_another_rank(tmp_path):
    import shutil

    _tiny_trainer(tmp_path / "r4", checkpoint_every=1, max_steps=1).train()
    shutil.copytree(tmp_path / "r4" / "checkpoints", tmp_path / "r8" / "checkpoints")
    with pytest.raises(CheckpointError, match=r"method\.r: checkpoint 4 vs model 8\. Fix: apply the method"):
        _tiny_trainer(tmp_path / "r8", method={"name": "lora", "r": 8}, checkpoint_every=1, max_steps=1).train()


@pytest.mark.slow
@rel(case="offline machine, hub model not cached", done="HF_HUB_OFFLINE=1, empty HF_HOME, model=gpt2-medium",
     expect="exit 2 naming 'gpt2-medium', `lodabench models`, `hf download --local-dir DIR` + model.pretrained=DIR and HF_HUB_OFFLINE; no checkpoints")
def test_offline_uncached_hub_model(tmp_path):
    home = tmp_path / "hf_home"
    home.mkdir()
    proc = run_cli([*REF_ARGS, "model=gpt2-medium"], tmp_path / "results", check=False, timeout=300,
                   env={"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "could not load 'gpt2-medium'" in proc.stderr
    for remedy in ("lodabench models", "--local-dir DIR", "model.pretrained=DIR", "HF_HUB_OFFLINE=1", "offline"):
        assert remedy in proc.stderr, remedy
    _no_training_started(tmp_path / "results")


# ============================================================================ safety


@rel(case="checkpoints load safely", done="scan src/lodabench for torch.load without weights_only=True, pickle/dill/joblib loads",
     expect="none: checkpoints load with safetensors or torch.load(weights_only=True) only")
def test_checkpoints_load_without_pickle():
    src = REPO_ROOT / "src" / "lodabench"
    bad = []
    for path in sorted(src.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "torch.load(" in code and "weights_only=True" not in code:
                bad.append(f"{path.relative_to(src)}:{n}: {line.strip()}")
            if re.search(r"\b(pickle|dill|joblib|cloudpickle)\.loads?\(", code) or "import pickle" in code:
                bad.append(f"{path.relative_to(src)}:{n}: {line.strip()}")
    assert not bad, "unsafe deserialisation:\n" + "\n".join(bad)


@rel(case="deletes stay inside the results directory",
     done="io.safe_rmtree on paths outside / equal to / escaping via '..' or a symlink from the root; trainer uses it",
     expect="ValueError and nothing deleted outside; a path inside is deleted; trainer.py has no bare shutil.rmtree")
def test_safe_rmtree(tmp_path):
    root = tmp_path / "results" / "run" / "checkpoints"
    (root / "step-0000001").mkdir(parents=True)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (root / "link").symlink_to(outside, target_is_directory=True)
    for path in (outside, root, root / ".." / ".." / ".." / "precious", root / "link", Path("/")):
        with pytest.raises(ValueError, match="refusing to delete"):
            safe_rmtree(path, root)
    assert (outside / "keep.txt").read_text() == "keep" and root.is_dir()
    safe_rmtree(root / "step-0000001", root)
    assert not (root / "step-0000001").exists()
    trainer_src = (REPO_ROOT / "src" / "lodabench" / "train" / "trainer.py").read_text(encoding="utf-8")
    assert "shutil.rmtree" not in trainer_src and "safe_rmtree(old, self.ckpt_dir)" in trainer_src


# Processes the harness may start, each with a fixed program (git, java, perl), never a config string.
SUBPROCESS_ALLOWED = {"run/records.py", "scoring/java.py", "scoring/coco.py", "scoring/dart.py", "bench/score.py",
                      "train/device.py"}
# Hub downloads (issue #26), each restricted to data files by allow_patterns: never code.
HUB_DOWNLOAD_ALLOWED = {"tasks/hub.py", "models/download.py"}


@rel(case="nothing from a config is executed or downloaded",
     done="scan src/lodabench and conf/ for eval/exec/compile, os.system, subprocess outside the allowlist, "
          "Hydra instantiate/_target_, trust_remote_code, explicit hub downloads",
     expect="none outside the audited allowlist")
def test_nothing_from_a_config_is_executed_or_downloaded():
    """Audit (by reading, then pinned by this scan so a new use must be reviewed):

    * ``eval``/``exec``/``compile``/``os.system``/``__import__`` on strings: none in src/lodabench.
    * subprocesses: records.py runs ``git rev-parse/status``; scoring/java.py runs ``<java> -version``
      (java from LODABENCH_JAVA or PATH, an environment choice, not a config value); scoring/coco.py runs
      the METEOR 1.5 / PTB tokenizer jars shipped in pycocoevalcap; scoring/dart.py runs the DART
      scripts' fixed commands; bench/score.py times ``<java> -version``; device.py runs ``nvidia-smi -L`` /
      ``--query-gpu`` (found on PATH, fixed arguments). No argv element comes from a Hydra config value.
    * Hydra ``_target_`` / ``hydra.utils.instantiate``: not used in src/ or conf/ (the config selects
      registered names only: methods.REGISTRY, data.task_names(), models' fixed loaders).
    * ``trust_remote_code``: never passed, so no code from the hub runs; models load with
      transformers' own classes. ``snapshot_download`` is called only by data/hub.py (a dataset's
      parquet files: allow_patterns ``<config>/<split>*.parquet``) and model_download.py (``lodabench
      models``: ``*.json``/``*.txt``/tokenizer files/``*.safetensors``, ``pytorch_model*.bin`` only where a
      repository has no safetensors; transformers loads those with ``weights_only``). The repository id is
      a config value, but what comes down is data, never a ``.py`` file; with HF_HUB_OFFLINE=1 (CI)
      nothing is fetched.
    * ``importlib`` use: methods.get_spec imports only modules named in the static REGISTRY (the
      built-ins) or by a registered spec; plugin modules are imported only when the environment names
      them, through the ``lodabench.plugins`` entry points of installed distributions or
      LODABENCH_PLUGINS (plugins.load_plugins), never from a config value; models.resolve_location
      and scoring/java.py (pycocoevalcap's jars) use ``find_spec`` (no import).
    """
    src = REPO_ROOT / "src" / "lodabench"
    hits = []
    patterns = [r"(?<![\w.`])(eval|exec|compile|__import__)\(", r"\bos\.(system|popen|exec\w*)\(",
                r"\binstantiate\(", r"_target_", r"trust_remote_code\s*=\s*True", r"(hf_hub_download|snapshot_download)\(",
                r"\burllib\.request\b|\brequests\.(get|post)\("]
    for path in sorted(src.rglob("*.py")):
        rel_name = path.relative_to(src).as_posix()
        text = path.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for pat in patterns:
                if "snapshot_download" in pat and rel_name in HUB_DOWNLOAD_ALLOWED:
                    continue
                if re.search(pat, code) and not code.strip().startswith(('"', "'", "``", "*", "-")):
                    hits.append(f"{rel_name}:{n}: {line.strip()}")
        if re.search(r"^\s*(import subprocess|from subprocess import)", text, re.M) and rel_name not in SUBPROCESS_ALLOWED:
            hits.append(f"{rel_name}: starts processes; review it and add it to SUBPROCESS_ALLOWED")
    from lodabench.tasks.hub import split_patterns
    from lodabench.models.download import LEGACY_WEIGHT_FILES, WEIGHT_FILES
    for pattern in [*split_patterns("default", "train"), *WEIGHT_FILES, *LEGACY_WEIGHT_FILES]:
        if not re.search(r"\.(json|txt|model|tiktoken|safetensors|bin|parquet)$", pattern):
            hits.append(f"hub download pattern {pattern!r} could bring code")
    for path in sorted(Path(CONF_DIR).rglob("*.yaml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            # The only _target_ allowed: Hydra's launcher plugin classes, fixed in our presets.
            if "_target_" in line and not re.match(r"\s*_target_:\s*hydra_plugins\.\w+", line):
                hits.append(f"conf/{path.relative_to(CONF_DIR)}: Hydra _target_: {line.strip()}")
    assert not hits, "\n".join(hits)
