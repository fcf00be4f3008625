"""The trainer's fast-path options (issue #30): ``trainer.num_workers`` and ``trainer.compile``.

``num_workers`` > 0 collates (pads, builds masks) each global batch's micro-batches in DataLoader
worker processes instead of on the main thread between steps; with ``pin_memory`` on CUDA so the
copy to the GPU can overlap. The batches and their order are the trainer's own (``Trainer._batches``:
a pure function of seed and epoch), the loader only moves the collation, so results are
bit-identical to ``num_workers=0`` (tests/test_trainer_fast.py). Workers are seeded anyway
(``worker_init_fn``: torch, ``random`` and numpy from seed, epoch and worker id; ``generator``), so
a collate function that draws random numbers is reproducible too, though it then differs from 0.

``compile=true`` wraps the training forward in ``torch.compile`` (inductor; the adapter modules are
part of the model, so their paths are compiled with it). Dev loss, checkpoints and evaluation use the
plain module (same parameters): evaluation shapes vary and decoding carries a KV cache, where
recompiling would cost more than it saves. Compiled kernels round differently from eager ones, so a
compiled run matches eager to float tolerance, not bit-for-bit (docs/benchmarks.md: the measured
difference and warm-up cost).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import torch


class EpochBatches(torch.utils.data.Dataset):
    """Item i: (batch index, examples, this rank's collated micro-batches) of the epoch's batch ``start + i``."""

    def __init__(self, batches: Sequence[tuple[int, list[Any]]], split: Callable[[list[Any]], list[list[Any]]],
                 collate: Callable[[list[Any]], Any]):
        self.batches, self.split, self.collate = list(batches), split, collate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[int, list[Any], list[Any]]:
        b, examples = self.batches[i]
        return b, examples, [self.collate(chunk) if chunk else None for chunk in self.split(examples)]


def _seed_worker(worker_id: int) -> None:
    """Every RNG a collate function might use, from the loader's per-worker seed (torch sets it from
    ``generator``: seed, epoch and worker id decide it)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:  # numpy is optional here
        pass


def worker_batches(batches: Sequence[tuple[int, list[Any]]], split: Callable, collate: Callable, *,
                   num_workers: int, seed: int, epoch: int, pin_memory: bool):
    """The epoch's remaining batches, collated by ``num_workers`` processes, in order."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    return torch.utils.data.DataLoader(
        EpochBatches(batches, split, collate), batch_size=None, shuffle=False, num_workers=num_workers,
        pin_memory=pin_memory, worker_init_fn=_seed_worker, generator=generator)


def compiled(module: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(module)``: attributes and parameters are the module's own (the wrapper delegates)."""
    return torch.compile(module)
