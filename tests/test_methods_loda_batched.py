"""LoDA(+)'s batched path (issue #30): q and v run as one chain, equal to the per-slot chain to float
rounding, with the same parameters and fewer operator calls per train step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from lodabench.methods import apply_method
from lodabench.methods.delta import AdaptedProjection
from lodabench.methods.loda import LoDAAdapter

from methods_tiny import batch, randomize_adapters, tiny

ATOL, RTOL = 1e-6, 1e-5  # float32 summation order only (adapter outputs here reach ~20: 1 ulp ~ 2e-6)


def per_slot(a: LoDAAdapter, x: torch.Tensor) -> torch.Tensor:
    """The pre-#30 chain of one slot, written out: s * (z + f1(z)) B or s * (zB + f2(f1(z)B)), z = xA."""
    z = x @ a.lora_A.t()
    h = F.layer_norm(z, (z.shape[-1],))
    for i, m in enumerate(a.f1.maps):
        h = h @ m.weight.t()
        h = F.leaky_relu(h, 0.8) if i < len(a.f1.maps) - 1 else h
    if not a.plus:
        return (z + h) @ a.lora_B.t() * a.scaling
    return (z @ a.lora_B.t() + F.leaky_relu(h @ a.lora_B.t(), 0.8)) * a.scaling


def wrappers(model):
    return [m for m in model.modules() if isinstance(m, AdaptedProjection)]


@pytest.mark.parametrize("method", ["loda", "loda_plus"])
def test_batched_equals_per_slot_outputs_and_grads(method):
    model = apply_method(tiny("gpt2"), {"name": method, "r": 4, "dropout": 0.0})
    randomize_adapters(model, scale=0.3)
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(0))
    w = wrappers(model)[0]
    names = ["q", "v"]
    got = LoDAAdapter.batched([w.adapters[n] for n in names], x)
    assert got is not None
    for n, d in zip(names, got):
        ref = per_slot(w.adapters[n], x)
        assert d.shape == ref.shape and torch.allclose(d, ref, rtol=RTOL, atol=ATOL), n
    params = [p for p in w.parameters() if p.requires_grad]
    g_batched = torch.autograd.grad(sum((d ** 2).sum() for d in got), params)
    g_ref = torch.autograd.grad(sum((per_slot(w.adapters[n], x) ** 2).sum() for n in names), params)
    for gb, gr in zip(g_batched, g_ref):
        # relative to the tensor's largest entry: entries near 0 come from cancelling sums
        assert (gb - gr).abs().max().item() <= RTOL * gr.abs().max().item()


def test_model_logits_equal_with_and_without_the_batched_path(monkeypatch):
    model = apply_method(tiny("gpt2"), {"name": "loda", "r": 4, "dropout": 0.0})
    randomize_adapters(model, scale=0.3)
    b = batch()
    with torch.no_grad():
        fast = model(**b).logits
        monkeypatch.setattr(LoDAAdapter, "batched", classmethod(lambda cls, adapters, x: None))
        slow = model(**b).logits
    assert (fast - slow).abs().max().item() < 1e-5


def test_mismatched_slots_fall_back_to_per_slot():
    model = apply_method(tiny("gpt2"), {"name": "loda", "r": 4})
    w = wrappers(model)[0]
    w.adapters["v"].scaling = 2 * w.adapters["q"].scaling
    assert LoDAAdapter.batched(list(w.adapters.values()), torch.zeros(1, 2, 64)) is None


def _ops(method: str) -> int:
    model = apply_method(tiny("gpt2"), {"name": method, "r": 4}).train()
    b = batch()

    def step():
        model(**b, labels=b["input_ids"]).loss.backward()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def test_loda_operator_calls_within_ten_percent_of_lora():
    """Issue #30's launch goal, counted (deterministic) rather than timed: before the batched path
    LoDA's forward+backward took ~1.3x LoRA's aten calls."""
    assert _ops("loda") <= 1.10 * _ops("lora")
