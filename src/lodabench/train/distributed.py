"""Data-parallel training under ``torchrun``: process group, device, DDP wrapper, small collectives.

``torchrun --nproc_per_node=N -m lodabench ...`` starts N copies of the normal entrypoint with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` in the environment.
``init_from_env`` turns that into a process group (NCCL when the run trains on CUDA, gloo on CPU)
and returns a ``DistContext``; without those variables (or with ``WORLD_SIZE=1``) it returns the
single-process context and nothing distributed is touched, so every code path below also works
(as a no-op) in an ordinary ``python -m lodabench`` run.

Who does what under DDP (see docs/cluster.md):
* every rank composes the same config, so the Hydra run directory is the same on all ranks;
* every rank trains on its share of each global batch and loads the checkpoint when resuming;
* rank 0 alone writes: ``config.yaml``, ``record.json``, checkpoints, decoding outputs, scores.
  The other ranks leave right after training (``finish``), rank 0 then evaluates on its own.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lodabench.errors import ConfigError

log = logging.getLogger(__name__)

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None          # None: single process, no process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def env_rank() -> int:
    """This process's rank from torchrun's environment (0 outside torchrun): usable before init."""
    return int(os.environ.get("RANK", "0") or 0)


def init_from_env(device_name: str = "auto") -> tuple[DistContext, torch.device | None]:
    """Join the process group torchrun describes; returns (context, device for this rank or None).

    The device is ``cuda:LOCAL_RANK`` with NCCL when the run trains on CUDA (``trainer.device`` auto
    with a GPU, or cuda), else the CPU with gloo. A single process gets ``None`` ("pick as usual"),
    or its own GPU when it is one job of a local multi-GPU grid (``assign_grid_gpu``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE, assign_grid_gpu(device_name)
    missing = [k for k in ENV_KEYS + ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} is not set in the environment; "
                          "launch data-parallel runs with `torchrun --nproc_per_node=N -m lodabench ...`.")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if torch.cuda.device_count() <= local_rank:
            raise ConfigError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are "
                              "visible; use --nproc_per_node <= the number of GPUs, or trainer.device=cpu.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        # Ranks > 0 wait while rank 0 alone computes the epoch's dev loss (a full dev set): allow an
        # hour instead of NCCL's 10-minute default before a collective counts as hung.
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(minutes=60)}
        if backend == "nccl":
            kwargs["device_id"] = device  # binds the group to this GPU (no guessing in barrier())
        dist.init_process_group(**kwargs)
    ctx = DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend)
    log.info("data-parallel: rank %d of %d (local rank %d), backend %s, device %s",
             rank, world, local_rank, backend, device)
    return ctx, device


def grid_gpu(job_num: int, visible: int) -> int | None:
    """The GPU index of job ``job_num`` of a local grid over ``visible`` GPUs (round robin), or None
    when there is nothing to choose (one GPU or none)."""
    if visible < 2:
        return None
    return int(job_num) % visible


def local_grid_job() -> int | None:
    """Hydra's job number when this process runs one job of a ``hydra/launcher=joblib`` multirun."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):  # not under Hydra (a test calling run() directly)
        return None
    if hc.mode != RunMode.MULTIRUN or hc.runtime.choices.get("hydra/launcher") != "joblib":
        return None
    return int(hc.job.num)


def assign_grid_gpu(device_name: str) -> torch.device | None:
    """``cuda:<job number mod visible GPUs>`` for a job of a local joblib grid, else None.

    Without this every job of ``hydra/launcher=joblib`` runs on cuda:0. joblib's loky workers are
    reused from job to job and CUDA is initialised once per worker, so a per-job
    ``CUDA_VISIBLE_DEVICES`` would not take in a worker that already ran a job; the job selects its
    GPU with ``torch.cuda.set_device`` instead. Which GPUs: those visible (``CUDA_VISIBLE_DEVICES``
    in the launching shell chooses them; one visible GPU, or an explicit ``trainer.device=cuda:N``
    or ``cpu``, assigns nothing).
    """
    if device_name not in ("auto", "cuda") or not torch.cuda.is_available():
        return None
    job = local_grid_job()
    index = None if job is None else grid_gpu(job, torch.cuda.device_count())
    if index is None:
        return None
    torch.cuda.set_device(index)
    log.info("local grid: job %d runs on cuda:%d of %d visible GPUs", job, index, torch.cuda.device_count())
    return torch.device("cuda", index)


class _DDP(DistributedDataParallel):
    """DDP that still answers the wrapped model's attributes (e.g. a prompt ensemble's
    ``num_prompts``, read by the pipelines' loss functions) instead of raising AttributeError."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def wrap_ddp(model: torch.nn.Module, device: torch.device, *, find_unused_parameters: bool = False) -> torch.nn.Module:
    """DDP over the model's trainable parameters (frozen base weights are not all-reduced).

    Buffers are not re-broadcast each forward: the methods keep no
    running statistics, and every rank builds the same buffers from the same config and seed.
    """
    ids = [device.index] if device.type == "cuda" else None
    ignore_sparse_tensors(model)
    # torch >= 2.13 spells "no buffer broadcast per forward" forward_sync_buffers (init still syncs).
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    return _DDP(model, device_ids=ids, find_unused_parameters=find_unused_parameters, **no_sync)


def ignore_sparse_tensors(model: torch.nn.Module) -> list[str]:
    """Keep frozen sparse tensors (S-LoDA ``method.storage=sparse_csr``'s pruned W_proj) out of DDP.

    DDP checks and broadcasts every parameter and buffer at init, which fails on a CSR tensor
    ("Sparse CSR tensors do not have is_contiguous"). These are frozen and built identically on
    every rank from the same pretrained weights and config, so nothing needs syncing: they are
    listed in ``_ddp_params_and_buffers_to_ignore``, DDP's own opt-out (also honoured by its
    buffer sync). A trainable sparse tensor cannot be all-reduced by DDP: refused, naming it.
    """
    names = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.layout != torch.strided]
    trainable = [n for n, t in model.named_parameters() if t.layout != torch.strided and t.requires_grad]
    if trainable:
        raise ConfigError(f"trainable sparse tensor(s) {', '.join(trainable[:3])} cannot be trained under DDP "
                          "(torchrun); train this method in one process or keep its sparse tensors frozen.")
    if names:
        already = list(getattr(model, "_ddp_params_and_buffers_to_ignore", []))
        model._ddp_params_and_buffers_to_ignore = sorted({*already, *names})
        log.info("DDP ignores %d frozen sparse tensor(s) (e.g. %s): identical on every rank", len(names), names[0])
    return names


def all_reduce_sum(value: float, device: torch.device) -> float:
    """Sum of a Python float over all ranks (the value itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def all_reduce_max(value: float, device: torch.device) -> float:
    """Largest Python float over all ranks (the value itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def finish() -> None:
    """All ranks meet (rank 0's last checkpoint is on disk), then the process group is torn down.

    Call it after the DDP wrapper is released (``Trainer.train`` does that): ``gc.collect()`` frees
    a wrapper caught in a reference cycle while the group is still registered, so the group's last
    owner is the registry and ``destroy_process_group`` frees it with the GIL released."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
