"""MACs per token of one layer's q/k/v projection, per method config: the theory the cost table
(lodabench.analysis.cost) sets next to measured latency and the cost claims (bench/cost_claims.py) check.

Moved here from analysis/cost.py (issue #28) so that bench does not import analysis, which imports bench's
variants: the formulas are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from lodabench.errors import ConfigError


@dataclass(frozen=True)
class ProjShape:
    """The fused q/k/v projection of one layer: input width and the three output widths."""

    d_in: int
    d_q: int
    d_k: int
    d_v: int

    @property
    def d_out(self) -> int:
        return self.d_q + self.d_k + self.d_v

    def width(self, slot: str) -> int:
        return {"q": self.d_q, "k": self.d_k, "v": self.d_v}[slot]


def dense_macs(s: ProjShape) -> int:
    return s.d_in * s.d_out


def lora_extra(s: ProjShape, r: int, slots: Sequence[str] = ("q", "v")) -> int:
    return sum(r * (s.d_in + s.width(t)) for t in slots)


def loda_extra(s: ProjShape, r: int, depth: int = 2, plus: bool = False, slots: Sequence[str] = ("q", "v")) -> int:
    return sum(r * s.d_in + depth * r * r + (2 if plus else 1) * r * s.width(t) for t in slots)


def r_loda_base(s: ProjShape, rank: int) -> int:
    return rank * s.d_in + rank * s.d_out


def s_loda_base(s: ProjShape, keep: float) -> float:
    return round(keep * s.d_in * s.d_out)


def method_macs(s: ProjShape, cfg: dict[str, Any], family: str = "gpt2") -> tuple[float, float]:
    """(theoretical, executed-by-methods/) MACs per token per layer for a method config."""
    name = cfg.get("name", "dense")
    slots = tuple(cfg.get("targets", ("q", "v")))
    r, depth = int(cfg.get("r", 4)), int(cfg.get("depth", 2))
    plus = name.endswith("_plus")
    if name in ("dense", "lora_merged"):
        m = dense_macs(s)
        return m, m
    if name in ("lora", "condlora"):
        m = dense_macs(s) + lora_extra(s, r, slots)
        return m, m
    extra = loda_extra(s, r, depth, plus, slots)
    if name in ("loda", "loda_plus"):
        return dense_macs(s) + extra, dense_macs(s) + extra
    if name.startswith("r_loda"):
        rank = int(cfg["rank"])
        executed = r_loda_base(s, rank) if family == "gpt2" else 3 * rank * s.d_in + rank * s.d_out
        return r_loda_base(s, rank) + extra, executed + extra
    if name.startswith("s_loda"):
        keep = float(cfg["keep"])
        executed = dense_macs(s) if cfg.get("storage", "dense") == "dense" else s_loda_base(s, keep)
        return s_loda_base(s, keep) + extra, executed + extra
    raise ConfigError(f"cost: no MACs formula for method={name!r}")


def proj_shape(model: torch.nn.Module) -> ProjShape:
    from lodabench.methods import targets

    p = targets.projections(model, 0)
    return ProjShape(p["q"].in_features, p["q"].out_features, p["k"].out_features, p["v"].out_features)


__all__ = ["ProjShape", "dense_macs", "loda_extra", "lora_extra", "method_macs", "proj_shape", "r_loda_base",
           "s_loda_base"]
