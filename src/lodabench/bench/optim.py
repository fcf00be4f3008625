"""The ``optim`` suite: one optimizer step of ``lora_adamw_loop`` (per tensor) vs ``lora_adamw`` (fused).

Shapes are GPT-2 medium's LoRA (LoRA Table 11's E2E recipe: r=4 on W_q and W_v; GPT-2 M has 24
layers of width 1024): per layer A (r x 1024) and B (1024 x r) for q and v, 96 tensors, random
values and gradients (no weights are needed: the update is element-wise, its cost depends only on
the shapes). Both optimizers see the same gradients; each timed call is ``steps`` optimizer steps
(gradients set, ``step()``), the two timed round-robin (timing.py) and reported as milliseconds per
step, median over rounds, with ``speedup`` = loop / fused paired per round. The record also says
whether the two ended bit-identical (they must: optim.py FusedLoRAAdamW). ``--quick``: 2 layers, for tests.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from lodabench.bench.timing import Stats, paired_ratio, round_robin

GPT2_MEDIUM = {"layers": 24, "d": 1024}  # GPT-2 medium config: n_layer 24, n_embd 1024
LORA_E2E = {"r": 4, "targets": ("q", "v")}  # LoRA Table 11 (GPT-2 M, E2E): r=4 on W_q, W_v
HP = {"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "correct_bias": True}  # Table 11


def lora_shapes(layers: int, d: int, r: int, targets: tuple[str, ...]) -> list[tuple[int, int]]:
    """A (r x d) and B (d x r) per target per layer."""
    return [shape for _ in range(layers) for _ in targets for shape in ((r, d), (d, r))]


def _setup(cls: type, shapes: list[tuple[int, int]], grads: list[torch.Tensor], device: str):
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=g).to(device)) for s in shapes]
    opt = cls(params, **HP)

    def steps(n: int) -> None:
        for _ in range(n):
            for p, grad in zip(params, grads):
                p.grad = grad
            opt.step()
    return params, steps


def run_optim(layers: int, warmup: int, reps: int, steps: int, device: str,
              log: Callable[[str], None]) -> dict[str, Any]:
    """The suite's record section (module docstring)."""
    from lodabench.train.optim import FusedLoRAAdamW, LoRAAdamW
    
    shapes = lora_shapes(layers, GPT2_MEDIUM["d"], LORA_E2E["r"], LORA_E2E["targets"])
    g = torch.Generator().manual_seed(1)
    grads = [(torch.randn(s, generator=g) * 1e-3).to(device) for s in shapes]
    loop_params, loop = _setup(LoRAAdamW, shapes, grads, device)
    fused_params, fused = _setup(FusedLoRAAdamW, shapes, grads, device)
    log(f"optim: {len(shapes)} tensors, {steps} steps per call, {warmup}+{reps} rounds")
    times = round_robin({"loop": lambda: loop(steps), "fused": lambda: fused(steps)}, warmup, reps, device)
    identical = all(torch.equal(a, b) for a, b in zip(loop_params, fused_params))
    per_step = {k: Stats.of([t / steps for t in v]) for k, v in times.items()}
    speedup = paired_ratio(times, "loop", "fused")
    return {"shapes": f"GPT-2 M LoRA: {layers} layers x r={LORA_E2E['r']} on q,v (d={GPT2_MEDIUM['d']})",
            "tensors": len(shapes), "elements": sum(a * b for a, b in shapes), "device": device,
            "steps_per_call": steps, "loop_ms": round(per_step["loop"].median * 1e3, 4),
            "fused_ms": round(per_step["fused"].median * 1e3, 4), "speedup": round(speedup.median, 4),
            "loop_ms_stats": per_step["loop"].as_dict(1e3), "fused_ms_stats": per_step["fused"].as_dict(1e3),
            "speedup_stats": speedup.as_dict(), "bit_identical": identical}
