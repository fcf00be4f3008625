"""`logger=wandb` logs the run offline (no network) beside its record."""

from __future__ import annotations

import json

import pytest

from runs_helpers import run_cli, run_dirs


@pytest.mark.slow  # a whole CLI run
def test_wandb_offline_run_is_written_beside_the_record(tmp_path, data_root):
    run_cli(["logger=wandb", "model=tiny-roberta", "data=rte", "data.max_train_examples=16", "data.max_eval_items=8",
             "trainer.max_steps=2", "trainer.warmup_steps=0", "trainer.max_length=64", "trainer.progress=false"],
            tmp_path, env={"WANDB_MODE": "offline"})
    (run_dir,) = run_dirs(tmp_path)
    assert json.loads((run_dir / "record.json").read_text())["status"] == "complete"
    logs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1 and logs[0].stat().st_size > 0
