"""Scale-out that survives real clusters (issue #26): resume on another GPU count, one GPU per job of a
local joblib grid, S-LoDA's CSR storage under DDP, and SLURM time-out/preemption (checkpoint at the
next step boundary, requeue through submitit's handler).

CUDA is faked with monkeypatch where a GPU count matters (this machine has none); signals are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from lodabench.train import distributed as D
from lodabench import methods
from lodabench.train import preemption
from lodabench.paths import REPO_ROOT
from lodabench.train.preemption import RunInterrupted, RunPreempted
from lodabench.config.schema import defaults_of
from lodabench.train.trainer import Trainer, restore_cuda_rng
from methods_tiny import tiny
from runs_helpers import TINY_E2E, final_weights, run_cli_here, run_dirs

torch.set_num_threads(1)
rel = pytest.mark.reliability


def _trainer(run_dir: Path, on_step=None, **over) -> Trainer:
    """A real Trainer: tiny LoRA GPT-2, 16 random sequences, batch 2 (8 steps per epoch)."""
    cfg = defaults_of("trainer")
    cfg.update(epochs=1, batch_size=2, warmup_steps=0, progress=False, eval_dev_loss=False, lr=1e-2,
               keep_epoch_checkpoints=False, checkpoint_every=100)
    cfg.update(over)
    model = methods.apply_method(tiny("gpt2"), {"name": "lora", "r": 4, "dropout": 0.1})
    g = torch.Generator().manual_seed(0)
    examples = [torch.randint(3, 250, (10,), generator=g) for _ in range(16)]
    calls = [0]

    def loss_fn(m, batch):
        calls[0] += 1
        if on_step is not None:
            on_step(calls[0])
        logits = m(input_ids=batch["input_ids"]).logits[:, :-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 batch["input_ids"][:, 1:].reshape(-1))

    return Trainer(model, cfg, seed=1, run_dir=run_dir, train_examples=examples,
                   collate=lambda xs: {"input_ids": torch.stack(xs)}, loss_fn=loss_fn)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------ resume on another GPU count
def _fake_gpus(monkeypatch, visible: int) -> list[tuple[int, torch.Tensor]]:
    """torch.cuda with ``visible`` GPUs; returns the (device, state) pairs set_rng_state receives."""
    restored: list[tuple[int, torch.Tensor]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((device, state)))

    def refuse_all(states):
        raise RuntimeError("set_rng_state_all must not be used: it fails when the GPU count changed")

    monkeypatch.setattr(torch.cuda, "set_rng_state_all", refuse_all)
    return restored


def _states(n: int) -> list[torch.Tensor]:
    return [torch.full((16,), i, dtype=torch.uint8) for i in range(n)]


@pytest.mark.parametrize("saved,visible,restored", [(4, 2, 2), (1, 2, 1), (2, 2, 2), (0, 2, 0), (2, 0, 0)])
def test_restore_cuda_rng_restores_the_states_that_fit(monkeypatch, saved, visible, restored):
    got = _fake_gpus(monkeypatch, visible)
    if visible == 0:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    note = restore_cuda_rng(_states(saved))
    assert [d for d, _ in got] == list(range(restored))
    assert all(int(state[0]) == d for d, state in got)  # GPU i gets saved state i
    expected = None if saved == visible else {"saved_cuda_states": saved, "visible": visible, "restored": restored}
    assert note == expected


@rel(case="resume on fewer GPUs than at save time",
     done="checkpoint written with 4 (faked) CUDA RNG states, resumed with 2 visible; and 1 state with 2 visible",
     expect="no error; GPUs 0..min-1 get the saved states; trainer.rng_restored names saved and visible counts")
@pytest.mark.parametrize("saved,visible", [(4, 2), (1, 2)])
def test_resume_with_another_gpu_count(tmp_path, monkeypatch, saved, visible):
    with monkeypatch.context() as m:  # save on a machine with `saved` GPUs
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "get_rng_state_all", lambda: _states(saved))
        first = _trainer(tmp_path, max_steps=3)
        first.train()
    got = _fake_gpus(monkeypatch, visible)
    second = _trainer(tmp_path, max_steps=3)
    assert second.try_resume()
    assert second.rng_restored == {"saved_cuda_states": saved, "visible": visible, "restored": min(saved, visible)}
    assert [d for d, _ in got] == list(range(min(saved, visible)))


# ------------------------------------------------------------------------ joblib: a GPU per job
@pytest.mark.parametrize("job,visible,gpu", [(0, 4, 0), (5, 4, 1), (3, 2, 1), (7, 1, None), (2, 0, None)])
def test_grid_gpu_round_robin(job, visible, gpu):
    assert D.grid_gpu(job, visible) == gpu


def _fake_cuda_for_grid(monkeypatch, visible: int) -> list[int]:
    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: chosen.append(i))
    return chosen


def test_joblib_job_gets_its_own_gpu(monkeypatch):
    chosen = _fake_cuda_for_grid(monkeypatch, 4)
    monkeypatch.setattr(D, "local_grid_job", lambda: 6)
    assert D.assign_grid_gpu("auto") == torch.device("cuda", 2) and chosen == [2]
    assert D.init_from_env("cuda") == (D.SINGLE, torch.device("cuda", 2))  # the call every run makes


@pytest.mark.parametrize("device,visible,job", [("cpu", 4, 6), ("cuda:3", 4, 6), ("auto", 1, 6), ("auto", 4, None)])
def test_no_gpu_assignment_when_nothing_to_choose(monkeypatch, device, visible, job):
    chosen = _fake_cuda_for_grid(monkeypatch, visible)
    monkeypatch.setattr(D, "local_grid_job", lambda: job)
    assert D.assign_grid_gpu(device) is None and chosen == []


def test_local_grid_job_reads_hydra_joblib_multirun():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from lodabench.paths import CONF_DIR
    import lodabench.config.run_names  # noqa: F401  (resolvers used by conf/)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            for launcher, mode, expected in (("joblib", RunMode.MULTIRUN, 5), ("basic", RunMode.MULTIRUN, None),
                                             ("joblib", RunMode.RUN, None)):
                cfg = compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
                with open_dict(cfg):
                    cfg.hydra.job.num, cfg.hydra.mode = 5, mode
                HydraConfig.instance().set_config(cfg)
                assert D.local_grid_job() == expected, (launcher, mode)
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


# ---------------------------------------------------------------------- S-LoDA sparse_csr + DDP
def test_sparse_csr_s_loda_wraps_and_trains_under_ddp():
    """One gloo rank is enough to hit DDP's init checks ('Sparse CSR tensors do not have is_contiguous')."""
    store = tempfile.mktemp()
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        model = methods.apply_method(tiny("gpt2"), {"name": "s_loda", "r": 4, "keep": 0.5, "storage": "sparse_csr"})
        wrapped = D.wrap_ddp(model, torch.device("cpu"))
        ignored = model._ddp_params_and_buffers_to_ignore
        assert ignored and all(name.endswith("w_csr") for name in ignored)
        loss = wrapped(input_ids=torch.randint(3, 250, (2, 8))).logits.pow(2).mean()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        del wrapped
    finally:
        dist.destroy_process_group()


def test_trainable_sparse_tensor_is_refused():
    model = torch.nn.Linear(4, 4)
    model.sparse = torch.nn.Parameter(torch.eye(4).to_sparse_csr())
    with pytest.raises(D.ConfigError, match="sparse"):
        D.ignore_sparse_tensors(model)


@pytest.mark.slow
def test_s_loda_sparse_csr_under_torchrun(tmp_path, data_root, gpt2_tokenizer_dir):
    from test_ddp import torchrun

    tiny_limits = [a for a in TINY_E2E if not a.startswith(("method", "trainer.max_steps"))]
    args = ["experiment=e2e_s_loda_p05", *tiny_limits, "method.storage=sparse_csr", "trainer.epochs=1",
            "selection.epochs=null", "trainer.max_steps=2"]
    proc = torchrun(args, env={"LODABENCH_RESULTS_DIR": str(tmp_path)}, module=True)
    (run_dir,) = run_dirs(tmp_path)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete" and record["parallel"]["world_size"] == 2, proc.stderr[-2000:]
    assert record["train"]["global_step"] == 2 and record["config"]["method"]["storage"] == "sparse_csr"


# ----------------------------------------------------------------------------- preemption
@pytest.fixture
def no_slurm(monkeypatch):
    for key in ("SLURM_JOB_ID", preemption.SUBMITIT_SIGNAL_ENV):
        monkeypatch.delenv(key, raising=False)


def test_signal_kinds_depend_on_slurm(monkeypatch, no_slurm):
    assert signal.SIGTERM in preemption.interrupt_signals()
    assert preemption.preempt_signals() == [signal.SIGUSR1, signal.SIGUSR2]
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv(preemption.SUBMITIT_SIGNAL_ENV, "USR1")
    assert preemption.preempt_signals() == [signal.SIGUSR1, signal.SIGTERM]
    assert signal.SIGTERM not in preemption.interrupt_signals()


def test_preempt_signal_outside_training_raises_at_once(no_slurm):
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(RunPreempted) as info:
        with preemption.interrupts_raise():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1)
    assert info.value.signal_name == "SIGUSR1" and info.value.step is None
    assert isinstance(info.value, RunInterrupted)  # closed like any interruption (exit 128 + signal)
    assert signal.getsignal(signal.SIGUSR1) == before


def test_sigterm_under_slurm_waits_for_the_step_boundary(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with pytest.raises(RunPreempted) as info, preemption.interrupts_raise():
        with preemption.at_step_boundaries():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            assert preemption.pending() == signal.SIGTERM  # no exception: the trainer decides when
        # leaving the loop with the signal still pending (after the trainer's last check) stops the run
    assert info.value.signal_name == "SIGTERM" and preemption.pending() is None


@rel(case="preemption signal during training (in-process)",
     done="SIGUSR1 sent from inside optimizer step 3 of 8 (mid-step); then the same trainer config resumed",
     expect="step 3 completes, checkpoint step-0000003 written, RunPreempted(step=3); the resumed run ends "
            "with the same weights as an uninterrupted one")
def test_preemption_checkpoints_at_the_next_step_boundary(tmp_path, no_slurm):
    ref = _trainer(tmp_path / "ref")
    ref.train()

    def signal_in_step(call):
        if call == 3:  # inside the forward of step 3, before its backward and optimizer step
            os.kill(os.getpid(), signal.SIGUSR1)

    run = _trainer(tmp_path / "run", on_step=signal_in_step)
    with pytest.raises(RunPreempted) as info, preemption.interrupts_raise():
        run.train()
    assert info.value.step == 3 and run.state.global_step == 3
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest == {"dir": "step-0000003", "global_step": 3}
    again = _trainer(tmp_path / "run")
    assert again.train().global_step == 8
    for name, ref_w in _weights(ref).items():
        assert torch.equal(_weights(again)[name], ref_w), name


def test_hand_off_calls_the_previous_requeue_handler(no_slurm):
    calls = []

    def submitit_like(signum, frame):  # stands in for SignalHandler.checkpoint_and_try_requeue
        calls.append(signum)
        raise SystemExit(-1)  # submitit requeues, then sys.exit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        preemption.hand_off(RunInterrupted(signal.SIGTERM))  # a plain interruption is not requeued
        assert calls == []
        assert "submitit_like" in preemption.describe_requeue()
        with pytest.raises(SystemExit):
            preemption.hand_off(RunPreempted(signal.SIGUSR1, step=3))
        assert calls == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR2, previous)
    preemption.hand_off(RunPreempted(signal.SIGUSR1, step=3))  # none installed: returns, caller exits
    assert calls == [signal.SIGUSR1] and preemption.describe_requeue().startswith("none")


def test_preempted_run_is_recorded_then_handed_off(tmp_path, no_slurm):
    from lodabench.run.records import RunRecord
    from lodabench.run.attempts import record_end

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest.json").write_text('{"dir": "step-0000007", "global_step": 7}')
    record = RunRecord(run_dir)
    record.start({"seed": 1}, 1, fresh=True)
    record_end(record, run_dir, RunPreempted(signal.SIGUSR1, step=7))
    rec = json.loads((run_dir / "record.json").read_text())
    attempt = rec["attempts"][-1]
    assert rec["status"] == "interrupted" and attempt["outcome"] == "preempted"
    assert attempt["signal"] == "SIGUSR1" and attempt["last_checkpoint"] == "step-0000007"
    assert attempt["at_step_boundary"] is True and attempt["requeue"].startswith("none")


@pytest.mark.slow
@rel(case="SIGUSR1 (SLURM's warning signal) during a CLI run",
     done="start a tiny E2E run (no periodic checkpoint), send SIGUSR1 once training has started, re-run",
     expect="exit 138; a checkpoint of the step in flight; record interrupted, attempt preempted with SIGUSR1 "
            "and that checkpoint; the same command resumes from it and completes")
def test_sigusr1_cli_run_checkpoints_and_resumes(tmp_path, data_root, gpt2_tokenizer_dir, no_slurm):
    results = tmp_path / "results"
    # 32 steps of ~0.3 s CPU each (the GPT-2 vocabulary's logits dominate even the tiny model): a margin of
    # seconds after the 0.3 s wait below; under load the signal lands at step 1 or 2. 120 steps made the
    # resumed run train ~4x longer for nothing the assertions read.
    args = [*TINY_E2E, "decoding.batch_size=2", "trainer.checkpoint_every=100000", "trainer.max_steps=32",
            "data.max_train_examples=256"]
    env = {**os.environ, "LODABENCH_RESULTS_DIR": str(results), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "lodabench", *args]
    with open(tmp_path / "log", "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not _training(results):
        time.sleep(0.05)
    time.sleep(0.3)  # into Trainer.train (a signal before its loop stops at once, with no checkpoint)
    proc.send_signal(signal.SIGUSR1)
    log = lambda: (tmp_path / "log").read_text()[-3000:]  # noqa: E731
    assert proc.wait(timeout=120) == 128 + signal.SIGUSR1, log()
    (run_dir,) = run_dirs(results)
    rec = json.loads((run_dir / "record.json").read_text())
    attempt = rec["attempts"][-1]
    assert rec["status"] == "interrupted" and attempt["outcome"] == "preempted" and attempt["signal"] == "SIGUSR1"
    ckpt = run_dir / "checkpoints" / attempt["last_checkpoint"]
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 32 and ckpt.name == f"step-{state['global_step']:07d}"
    assert state["batch_in_epoch"] == state["global_step"]  # a step boundary: every batch taken was stepped
    again = run_cli_here(args, results)  # the resume in this process (the signal needed a process of its own)
    assert f"batch {state['global_step']}, step {state['global_step']})" in again.stdout + again.stderr
    rec = json.loads((run_dir / "record.json").read_text())
    assert rec["status"] == "complete" and [a["outcome"] for a in rec["attempts"]] == ["preempted", "complete"]
    assert rec["train"]["global_step"] == 32 and final_weights(run_dir)


def _training(results: Path) -> bool:
    """The run's record lists its schedule, written just before Trainer.train starts."""
    for path in results.rglob("record.json"):
        try:
            return "train" in json.loads(path.read_text())
        except ValueError:
            return False
    return False
