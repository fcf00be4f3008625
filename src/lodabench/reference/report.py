"""One line per compared quantity: a max abs difference against its tolerance, or mismatching items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# The bar of issue #18 (README "Checked against microsoft/LoRA"): the case READMEs say a correct
# float32 re-implementation agrees to ~1e-6 (losses), 3e-7 (logits), 3e-8 (gradients), 1e-7
# (parameters); these tolerances leave a margin of 10x or more for other CPUs / BLAS builds.
TOL_LOSS = 1e-5
TOL_LOGITS = 1e-5
TOL_GRADS = 1e-6
TOL_PARAMS = 1e-6
SHOWN = 3  # mismatching items printed per quantity


@dataclass
class Quantity:
    name: str
    ok: bool
    detail: str


@dataclass
class CaseReport:
    case: str
    kind: str
    quantities: list[Quantity] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.quantities) and all(q.ok for q in self.quantities)

    def max_abs(self, name: str, ours: torch.Tensor, expected: torch.Tensor, tol: float) -> float:
        """Record max |ours - expected| (float64) against ``tol``; shapes must agree."""
        if ours.shape != expected.shape:
            self.quantities.append(Quantity(name, False, f"shape {tuple(ours.shape)} != expected {tuple(expected.shape)}"))
            return float("inf")
        diff = float((ours.double() - expected.double()).abs().max()) if ours.numel() else 0.0
        ok = diff <= tol  # NaN fails
        self.quantities.append(Quantity(name, ok, f"max |diff| {diff:.3g} (tol {tol:g})"))
        return diff

    def same_items(self, name: str, ours: Sequence, expected: Sequence, labels: Sequence[str] | None = None) -> None:
        """Record item-by-item equality; the first mismatches are shown with both values."""
        if len(ours) != len(expected):
            self.quantities.append(Quantity(name, False, f"{len(ours)} items, expected {len(expected)}"))
            return
        bad = [i for i, (a, b) in enumerate(zip(ours, expected)) if a != b]
        if not bad:
            self.quantities.append(Quantity(name, True, f"all {len(ours)} identical"))
            return
        shown = "; ".join(f"{labels[i] if labels else f'item {i}'}: ours {_short(ours[i])} expected {_short(expected[i])}"
                          for i in bad[:SHOWN])
        self.quantities.append(Quantity(name, False, f"{len(bad)} of {len(ours)} differ: {shown}"))

    def lines(self) -> list[str]:
        width = max((len(q.name) for q in self.quantities), default=0)
        body = [f"  {'ok  ' if q.ok else 'FAIL'} {q.name:<{width}}  {q.detail}" for q in self.quantities]
        return [f"{self.case} ({self.kind}): {'PASS' if self.ok else 'FAIL'}", *body]


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
