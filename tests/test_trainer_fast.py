"""trainer.num_workers (collation in DataLoader workers: bit-identical to 0) and trainer.compile (torch.compile
of the training forward: eager's dev loss within 1e-4 relative), lodabench.train.fast."""

from __future__ import annotations

import json

import pytest
import torch

from lodabench.config.schema import defaults_of
from methods_tiny import InjectedCrash, lora_trainer


def _cfg(**over):
    cfg = defaults_of("trainer")
    cfg.update({"optimizer": "lora_adamw", "epochs": 2, "batch_size": 4, "warmup_steps": 2, "lr": 1e-2,
                "progress": False, "eval_dev_loss": False, "checkpoint_every": 1, "keep_epoch_checkpoints": False,
                **over})
    return cfg


def _weights(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_workers_train_bit_identically_to_the_main_thread(tmp_path, grad_accum):
    main = lora_trainer(tmp_path / "w0", _cfg(num_workers=0, grad_accum=grad_accum))
    main.train()
    workers = lora_trainer(tmp_path / "w2", _cfg(num_workers=2, grad_accum=grad_accum))
    workers.train()
    assert workers.state.global_step == main.state.global_step == 8
    assert isinstance(workers._epoch_batches(0), torch.utils.data.DataLoader)  # the workers did collate
    assert _equal(_weights(main), _weights(workers)) and workers.state.train_loss == main.state.train_loss
    assert not _equal(_weights(main), _weights(lora_trainer(tmp_path / "fresh", _cfg())))  # it trained


def test_workers_resume_mid_epoch_as_uninterrupted(tmp_path):
    whole = lora_trainer(tmp_path / "whole", _cfg(num_workers=0))
    whole.train()
    with pytest.raises(InjectedCrash):  # dies in step 3 of epoch 1 (4 steps per epoch)
        lora_trainer(tmp_path / "split", _cfg(num_workers=2), crash_at_call=3).train()
    resumed = lora_trainer(tmp_path / "split", _cfg(num_workers=2))
    resumed.train()
    assert resumed.state.global_step == 8 and _equal(_weights(whole), _weights(resumed))


@pytest.mark.slow
def test_tiny_e2e_run_with_workers_and_compiled(tmp_path, complete_run):
    """The CLI's tiny E2E run: num_workers=2 gives the same hypotheses and dev loss as 0 (bit for bit);
    compile=true gives eager's dev loss within 1e-4 relative, and the record says it was compiled."""
    from runs_helpers import TINY_E2E, run_cli, run_cli_here, run_dirs

    def read(run_dir):
        record = json.loads((run_dir / "record.json").read_text())
        return record, (run_dir / "hyp.txt").read_text()

    def run(launch, name, *extra):
        launch([*TINY_E2E, *extra], tmp_path / name, timeout=900)
        (run_dir,) = run_dirs(tmp_path / name)
        return read(run_dir)

    # The eager run is the session's complete tiny run of TINY_E2E (tests/conftest.py; other modules use it).
    eager, eager_hyp = read(complete_run(TINY_E2E, tmp_path / "eager")[1])
    workers, workers_hyp = run(run_cli_here, "workers", "trainer.num_workers=2")
    assert workers_hyp == eager_hyp and workers["metrics"]["dev_loss"] == eager["metrics"]["dev_loss"]
    # A subprocess: torch.compile leaves process-wide Dynamo/Inductor caches and compile workers behind.
    compiled, _ = run(run_cli, "compiled", "trainer.compile=true")
    assert compiled["config"]["trainer"]["compile"] is True and eager["config"]["trainer"]["compile"] is False
    rel = abs(compiled["metrics"]["dev_loss"] - eager["metrics"]["dev_loss"]) / abs(eager["metrics"]["dev_loss"])
    assert rel <= 1e-4, rel


@pytest.mark.slow
def test_compiled_forward_sees_the_fused_optimizers_updates(tmp_path):
    """compile=true with lora_adamw, whose parameters become views of a flat buffer after the first
    compiled forward, trains exactly as compile=true with lora_adamw_loop (no storage swap): a compiled
    graph holding the old storages would train on stale weights. (Compiled vs eager differ here by more
    than the motion: the tiny model's dropout draws other masks under inductor.)"""
    fused = lora_trainer(tmp_path / "fused", _cfg(compile=True, epochs=1, checkpoint_every=0))
    assert fused.train_model is not fused.model  # the compiled wrapper trains
    fused.train()
    loop = lora_trainer(tmp_path / "loop", _cfg(compile=True, epochs=1, checkpoint_every=0, optimizer="lora_adamw_loop"))
    loop.train()
    start = _weights(lora_trainer(tmp_path / "fresh", _cfg()))
    assert _equal(_weights(fused), _weights(loop))
    assert not _equal(_weights(fused), start)
