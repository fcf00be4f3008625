"""Data-parallel training (torchrun, gloo on CPU) ends where one process with the same global batch does.

The trainer-level cases run tests/ddp_worker.py (tiny LoRA GPT-2, synthetic examples whose target
lengths vary 1-30 tokens, so the two ranks' shares carry different token counts); the CLI case runs
``torchrun -m lodabench`` on real E2E slices and checks the run record is written once, by rank 0.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ddp_worker
from lodabench.errors import ConfigError
from lodabench.paths import REPO_ROOT
from lodabench.train.trainer import Trainer, default_loss_weight, epoch_order, rank_chunks
from runs_helpers import TINY_E2E, final_weights, run_cli_here, run_dirs

WORKER = Path(__file__).with_name("ddp_worker.py")


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (torchrun starts its workers in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def torchrun(args: list[str], *, env: dict[str, str] | None = None, module: bool = False,
             check: bool = True, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += (["-m", "lodabench"] if module else [str(WORKER)]) + args
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                **(env or {})}
    # Output goes to files, not pipes: a hung worker holding a pipe open would block the test.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=err, text=True)
        try:
            p.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            for pid in [*_descendants(p.pid), p.pid]:  # the workers first, then torchrun itself
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            p.wait()
            timed_out = True
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())
    if timed_out or (check and proc.returncode != 0):
        what = f"timed out after {timeout} s" if timed_out else f"exited {proc.returncode}"
        raise AssertionError(f"torchrun {what}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}")
    return proc


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def single_b8(tmp_path_factory):
    out = tmp_path_factory.mktemp("single_b8")
    ddp_worker.train(out, batch_size=8)
    return load_file(str(out / "weights.safetensors"))


# ------------------------------------------------------------------------------------- fast
@pytest.mark.parametrize("n,world,micro", [(8, 2, 1), (5, 2, 2), (3, 2, 2), (1, 2, 1), (7, 3, 2), (8, 1, 3)])
def test_rank_chunks_cover_the_global_batch_once(n, world, micro):
    batch = list(range(n))
    per_rank = [rank_chunks(batch, r, world, micro) for r in range(world)]
    assert all(len(chunks) == micro for chunks in per_rank)  # same number of backward passes everywhere
    assert [x for chunks in per_rank for c in chunks for x in c] == batch


def test_shares_carry_different_token_counts():
    """The worker's data really is the hard case: the ranks' shares differ in target tokens."""
    data = ddp_worker.examples()
    first = [data[i] for i in epoch_order(len(data), 110, 0)[:8]]
    counts = [sum(sum(ex["loss_mask"][1:]) for ex in rank_chunks(first, r, 2, 1)[0]) for r in range(2)]
    assert counts[0] != counts[1] and min(counts) > 0, counts


def test_grad_accum_matches_one_global_batch(tmp_path, single_b8):
    ddp_worker.train(tmp_path, batch_size=8, grad_accum=3)   # micro-batches of 3, 3, 2 examples
    assert max_abs_diff(load_file(str(tmp_path / "weights.safetensors")), single_b8) < 1e-5


def test_mean_of_micro_batch_means_would_not_match(tmp_path, single_b8):
    """Control: weighting every micro-batch equally (what a per-rank mean + DDP average does) differs."""
    ddp_worker.train(tmp_path, batch_size=8, grad_accum=2, naive_weights=True)
    assert max_abs_diff(load_file(str(tmp_path / "weights.safetensors")), single_b8) > 1e-4


def test_default_loss_weight_is_lm_loss_normaliser():
    batch = {"loss_mask": torch.tensor([[0., 1., 1., 0.], [1., 1., 1., 1.]]), "input_ids": torch.zeros(2, 4)}
    assert default_loss_weight(batch) == pytest.approx(5 + 1e-4)   # position 0 never carries loss
    assert default_loss_weight({"labels": torch.tensor([0, 1, 1]), "input_ids": torch.zeros(3, 4)}) == 3.0


def _trainer(tmp_path, **over):
    cfg = {"lr": 1e-3, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-6, "weight_decay": 0.0,
           "warmup_steps": 0, "epochs": 1, "batch_size": 4, "max_steps": 2, "checkpoint_every": 0,
           "progress": False, **over}
    model = ddp_worker.build_model()
    return Trainer(model, cfg, seed=1, run_dir=tmp_path, train_examples=ddp_worker.examples(8),
                   collate=ddp_worker.CausalLMCollator(pad_token_id=0),
                   loss_fn=lambda m, b: ddp_worker.lm_loss(m(input_ids=b["input_ids"]).logits, b["input_ids"],
                                                           b["loss_mask"]))


@pytest.mark.parametrize("over,needle", [
    ({"precision": "fp16"}, "needs a CUDA device"),
    ({"precision": "fp8"}, "trainer.precision='fp8'"),
    ({"grad_accum": 5}, "trainer.grad_accum=5 exceeds"),
    ({"grad_accum": 2, "micro_batch_size": 1}, "both set"),
])
def test_bad_parallel_settings_are_config_errors(tmp_path, over, needle):
    with pytest.raises(ConfigError, match=needle):
        _trainer(tmp_path, **over)


def test_micro_batch_size_sets_accumulation(tmp_path):
    assert _trainer(tmp_path, batch_size=8, micro_batch_size=3).micro_steps == math.ceil(8 / 3)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    trainer = _trainer(tmp_path, precision="bf16")
    state = trainer.train()
    assert state.global_step == 2 and math.isfinite(state.last_loss)


def test_ddp_wrapper_keeps_the_model_interface():
    """The pipelines call model(input_ids=..., attention_mask=...) and read e.g. ``num_prompts``."""
    import torch.distributed as dist
    from lodabench.train.distributed import wrap_ddp

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        model = ddp_worker.build_model()
        model.num_prompts = 3
        wrapped = wrap_ddp(model, torch.device("cpu"))
        ids = torch.tensor([[5, 6, 7]])
        out = wrapped(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert out.logits.shape == (1, 3, 256) and wrapped.num_prompts == 3 and wrapped.module is model
        with pytest.raises(AttributeError):
            wrapped.no_such_attribute
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------ torchrun (slow)
@pytest.mark.slow
def test_two_ranks_match_one_process(tmp_path, single_b8):
    torchrun([str(tmp_path), "--batch-size", "8"])
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["world_size"] == 2 and state["global_step"] == 4
    assert max_abs_diff(load_file(str(tmp_path / "weights.safetensors")), single_b8) < 1e-5


@pytest.mark.slow
def test_uneven_shares_accumulation_and_resume_match_one_process(tmp_path):
    """Global batch 5 over 2 ranks (3 + 2 examples) with 2 micro-steps each (rank 1's second one is
    empty: a zero-weighted pass), killed after step 2 and resumed by all ranks from rank 0's checkpoint."""
    ddp_worker.train(tmp_path / "single", batch_size=5)
    ddp = tmp_path / "ddp"
    crashed = torchrun([str(ddp), "--batch-size", "5", "--grad-accum", "2"],
                       env={"LODABENCH_FAULT_AFTER_STEP": "2"}, check=False)
    assert crashed.returncode != 0 and not (ddp / "weights.safetensors").exists()
    assert json.loads((ddp / "run" / "checkpoints" / "latest.json").read_text())["global_step"] == 2
    torchrun([str(ddp), "--batch-size", "5", "--grad-accum", "2"])
    assert json.loads((ddp / "state.json").read_text())["micro_steps"] == 2
    ref = load_file(str(tmp_path / "single" / "weights.safetensors"))
    assert max_abs_diff(load_file(str(ddp / "weights.safetensors")), ref) < 1e-5


# The spine's tiny E2E run, without LoRA dropout (dropout masks are drawn per rank, so they differ
# from one process's; with dropout the runs agree in distribution, not to 1e-5).
DDP_E2E = [*TINY_E2E, "method.dropout=0.0"]


@pytest.mark.slow
def test_cli_under_torchrun_matches_one_process_and_writes_once(tmp_path, data_root, gpt2_tokenizer_dir):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    run_cli_here(DDP_E2E, single)  # the one-process reference, in this process
    proc = torchrun(DDP_E2E, env={"LODABENCH_RESULTS_DIR": str(ddp)}, module=True)
    assert proc.stdout.count("[lodabench] complete:") == 1          # rank 0 alone reports
    (run_dir,) = run_dirs(ddp)
    (ref_dir,) = run_dirs(single)
    assert run_dir.relative_to(ddp) == ref_dir.relative_to(single)  # same run dir as one process
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete" and len(record["attempts"]) == 1
    assert record["parallel"]["world_size"] == 2 and record["parallel"]["backend"] == "gloo"
    assert record["train"]["global_step"] == 6
    assert (run_dir / ".hydra" / "config.yaml").is_file() and not (run_dir / "error.txt").exists()
    assert len((run_dir / "hyp.txt").read_text(encoding="utf-8").splitlines()) == 6
    assert max_abs_diff(final_weights(run_dir), final_weights(ref_dir)) < 1e-5
    # A re-launch under torchrun skips the complete run on every rank.
    again = torchrun(DDP_E2E, env={"LODABENCH_RESULTS_DIR": str(ddp)}, module=True)
    assert again.stdout.count("skip (complete)") == 1
