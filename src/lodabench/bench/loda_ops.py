"""LoDA's extra launches (issue #30): aten calls per train step and CPU step time, batched vs per slot.

``python -m lodabench.bench.loda_ops [--reps N] [--out FILE]``

One process, tiny-gpt2 (2 layers, the bench-gpu smoke model), batch 2 x 16, eager, lora_adamw
(fused), torch threads 1. Variants: lora, loda, loda_plus (the batched q+v chain of
``LoDAAdapter.batched``) and ``*_per_slot`` (the same models with the batched path switched off:
the code before the change, which is still the fallback). Counts are taken as ``gpu_steps.aten_calls`` takes them
method (torch.profiler, CPU side, one step after a warm one); times are round-robin medians and
per-round ratios to LoRA. Goal (issue #30): LoDA's count within 10 % of LoRA's; CPU ratios no worse.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from lodabench.bench import gpu_steps
from lodabench.bench.timing import Stats, paired_ratio, round_robin
from lodabench.io import atomic_write_json

VARIANTS = ("lora", "loda", "loda_plus", "loda_per_slot", "loda_plus_per_slot")


@contextlib.contextmanager
def per_slot_path(on: bool) -> Iterator[None]:
    """Switch LoDA's batched path off (each slot's own ``forward``, as before issue #30)."""
    from lodabench.methods.loda import LoDAAdapter

    saved = LoDAAdapter.__dict__["batched"]
    if on:
        LoDAAdapter.batched = classmethod(lambda cls, adapters, x: None)
    try:
        yield
    finally:
        LoDAAdapter.batched = saved


def _counted(step: Callable[[], None]) -> tuple[int, dict[str, int]]:
    from torch.profiler import ProfilerActivity, profile

    step()  # lazy optimizer state outside the count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}
    return sum(ops.values()), ops


def _wrapped(step: Callable[[], None], per_slot: bool) -> Callable[[], None]:
    def run() -> None:
        with per_slot_path(per_slot):
            step()
    return run


def measure(reps: int) -> dict[str, Any]:
    from lodabench.bench.train import make_batch

    base = gpu_steps.base_model(True, "cpu")
    batch = make_batch(base, *gpu_steps.SMOKE, "cpu")
    fns, counts, by_op = {}, {}, {}
    for v in VARIANTS:
        model = gpu_steps.variant(base, v.removesuffix("_per_slot"), "cpu")
        fns[v] = _wrapped(gpu_steps.train_step(model, batch, gpu_steps.optimizer(model, fused=True)), v.endswith("_per_slot"))
        counts[v], by_op[v] = _counted(fns[v])
    times = round_robin(fns, 3, reps, "cpu")
    return {"op_counts": counts, "op_ratio_to_lora": {v: round(counts[v] / counts["lora"], 3) for v in VARIANTS},
            "ops_by_name": by_op, "step_ms": {v: Stats.of(t).as_dict(1e3, 3) for v, t in times.items()},
            "step_ratio_to_lora": {v: paired_ratio(times, v, "lora").as_dict(1, 3) for v in VARIANTS if v != "lora"},
            "goal_loda_ops_within_10pct": counts["loda"] <= 1.10 * counts["lora"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lodabench.bench.loda_ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=30, help="timed round-robin rounds (default %(default)s)")
    p.add_argument("--out", type=Path, help="record path (default results/bench/<stamp>-cpu-loda-ops.json)")
    args = p.parse_args(argv)
    from lodabench.machine import machine_info
    from lodabench.paths import REPO_ROOT

    torch.set_num_threads(1)  # the machine is shared; ratios are what is compared
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO_ROOT / "results" / "bench" / f"{stamp}-cpu-loda-ops.json"
    rec = {"name": out.stem, "started": stamp, "machine": machine_info("cpu"), "torch_threads": 1,
           "command": " ".join(["python -m lodabench.bench.loda_ops", *sys.argv[1:]]), "reps": args.reps,
           "setup": "tiny-gpt2 (2 layers), 2 x 16 tokens, eager, lora_adamw fused, r=4 on q,v, dropout 0.1",
           **measure(args.reps)}
    atomic_write_json(out, rec)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
