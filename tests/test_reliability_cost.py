"""Reliability of the cost block and of the train loss across a resume (issue 27): a run interrupted
mid-epoch and resumed reports the whole epoch's train loss and the same train tokens as an
uninterrupted run; train seconds are those of the attempts that could record them.

Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lodabench.config.schema import defaults_of
from methods_tiny import InjectedCrash, lora_trainer
from runs_helpers import TINY_E2E, run_cli, run_cli_here, run_dirs

torch.set_num_threads(1)
rel = pytest.mark.reliability
ARGS = [*TINY_E2E, "decoding.batch_size=2"]


def _trainer(run_dir: Path, crash_at_call: int | None = None):
    """Tiny GPT-2 + LoRA, 16 sequences, batch 4 (4 steps an epoch), 2 epochs, a checkpoint every step;
    ``crash_at_call`` raises inside that loss call (mid-step)."""
    cfg = {**defaults_of("trainer"), "epochs": 2, "batch_size": 4, "warmup_steps": 0, "lr": 1e-2,
           "progress": False, "eval_dev_loss": False, "checkpoint_every": 1, "keep_epoch_checkpoints": False}
    return lora_trainer(run_dir, cfg, crash_at_call)


def _crash_then_resume(run_dir: Path, crash_at_call: int, edit_state=None):
    with pytest.raises(InjectedCrash):
        _trainer(run_dir, crash_at_call).train()
    if edit_state is not None:
        latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]
        edit_state(run_dir / "checkpoints" / latest / "trainer_state.json")
    return _trainer(run_dir).train()


# ----------------------------------------------------------------------------- the trainer
@rel(case="train loss after a mid-epoch resume",
     done="trainer crashed inside step 6 of 8 (epoch 2 of 2, after step 5's checkpoint), then resumed",
     expect="each epoch's recorded train loss equals an uninterrupted run's exactly (the epoch's running loss "
            "sum and count are in the checkpoint), and so does the train token count")
def test_mid_epoch_resume_reports_the_whole_epochs_loss(tmp_path):
    whole = _trainer(tmp_path / "whole").train()
    resumed = _crash_then_resume(tmp_path / "split", crash_at_call=6)
    assert resumed.global_step == whole.global_step == 8
    assert set(whole.train_loss) == {"1", "2"}
    assert resumed.train_loss == whole.train_loss
    assert resumed.train_tokens == whole.train_tokens == 8 * 4 * 10


@rel(case="mid-epoch resume from a checkpoint written before the epoch loss was saved",
     done="trainer crashed mid-epoch 2; the checkpoint's trainer_state.json stripped of epoch_loss_sum, "
          "epoch_loss_count and train_tokens (as older versions wrote it); resumed",
     expect="the old checkpoint loads and training finishes; epoch 2's loss is the mean of the resumed steps, "
            "as before the fix (the steps before the resume are unknown to that checkpoint)")
def test_old_checkpoint_without_the_new_fields_still_resumes(tmp_path):
    def strip(path: Path) -> None:
        state = json.loads(path.read_text())
        for key in ("epoch_loss_sum", "epoch_loss_count", "train_tokens"):
            del state[key]
        path.write_text(json.dumps(state))

    whole = _trainer(tmp_path / "whole").train()
    resumed = _crash_then_resume(tmp_path / "split", crash_at_call=6, edit_state=strip)
    assert resumed.global_step == 8 and resumed.train_loss["1"] == whole.train_loss["1"]
    assert resumed.train_loss["2"] != whole.train_loss["2"]  # 3 of epoch 2's 4 steps
    assert resumed.train_tokens == 3 * 4 * 10


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def done(tmp_path_factory, complete_run):
    """One complete, uninterrupted tiny E2E run (made once per session, conftest.complete_run)."""
    _, run_dir = complete_run(ARGS, tmp_path_factory.mktemp("done") / "results")
    return json.loads((run_dir / "record.json").read_text())


@pytest.mark.slow
@rel(case="cost and train loss of a run killed mid-epoch and resumed",
     done="tiny E2E run killed abruptly after optimizer step 3 (LODABENCH_FAULT_AFTER_STEP=3; last checkpoint "
          "step 2, mid-epoch), then the same command",
     expect="record train.train_loss and cost.train_tokens equal the uninterrupted run's; the killed attempt "
            "has no cost entry (it could not write), so cost.train_s is the resuming attempt's own")
def test_killed_mid_epoch_then_resumed_matches_uninterrupted(done, tmp_path):
    crashed = run_cli(ARGS, tmp_path, env={"LODABENCH_FAULT_AFTER_STEP": "3"}, check=False)
    assert crashed.returncode != 0
    run_cli_here(ARGS, tmp_path)  # the resuming launch in this process (the crash above needs its own)
    (run_dir,) = run_dirs(tmp_path)
    rec = json.loads((run_dir / "record.json").read_text())
    first, second = rec["attempts"]
    assert first["outcome"] == "died" and "cost" not in first and second["start"] == "resume"
    assert rec["train"]["train_loss"] == done["train"]["train_loss"]
    assert rec["cost"]["train_tokens"] == done["cost"]["train_tokens"] > second["cost"]["tokens_processed"] > 0
    assert rec["cost"]["train_s"] == second["cost"]["train_s"]
    assert rec["cost"]["adapter_bytes"] == done["cost"]["adapter_bytes"]
