"""DoRA (Liu et al., 2024): W' = m * (W0 + s B A) / ||W0 + s B A||, norm per output feature.

W0 is in nn.Linear orientation (out, in) (GPT-2's Conv1D slice is transposed first), so "per
output feature" is the L2 norm of each row. The norm is detached from the graph (DoRA §4.3:
"we suggest treating ||V + dV||_c as a constant"), m (out,) is initialised to ||W0|| row-wise
(B = 0 at init, so W' = W0), A/B are initialised as LoRA.

The forward is written as PEFT (``use_dora=True``) writes it, so the two agree numerically:

    delta = (m/n - 1) * (W0 x) + (m/n) * s * B A x,     n = ||W0 + s B A||.detach()

added to the base output W0 x + b. When dropout is active (training, p > 0) the W0 x inside
the delta uses the dropped input, as PEFT does. Merging writes W' into the base weight.
Trainable per adapted slice: r*(in + out) + out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lodabench.methods import delta, targets
from lodabench.methods.base import LoRAStyleConfig, MethodSpec, hp, low_rank_text
from lodabench.methods.lora import LoRAAdapter


@dataclass
class DoRAConfig(LoRAStyleConfig):
    name: str = hp("dora", "config name of the method")


class DoRAAdapter(LoRAAdapter):
    mergeable = True

    def __init__(self, w0: torch.Tensor, r: int, scaling: float):
        out_f, in_f = w0.shape
        super().__init__(in_f, out_f, r, scaling)
        with torch.no_grad():
            norm = w0.detach().float().norm(dim=1) if not w0.is_meta else torch.empty(out_f, device="meta")
        self.magnitude = nn.Parameter(norm.to(w0.dtype))

    def weight_norm(self, w0: torch.Tensor) -> torch.Tensor:
        return torch.linalg.norm(w0 + self.scaling * (self.lora_B @ self.lora_A).detach(), dim=1).detach()

    def forward(self, x: torch.Tensor, ctx: delta.DeltaContext) -> torch.Tensor:
        w0 = ctx.weight().detach()
        scale = (self.magnitude / self.weight_norm(w0)).view(*([1] * (x.dim() - 1)), -1)
        if ctx.dropout_active:
            base = F.linear(x, w0)
        else:
            b = ctx.bias()
            base = ctx.base_out if b is None else ctx.base_out - b
        lora = (self.low(x) @ self.lora_B.t()) * self.scaling
        return (scale - 1) * base + scale * lora

    def merged_weight(self, w0: torch.Tensor) -> torch.Tensor:
        updated = w0 + self.delta_weight().to(w0.dtype)
        return (self.magnitude / torch.linalg.norm(updated, dim=1)).view(-1, 1) * updated


def apply(model: nn.Module, cfg: DoRAConfig) -> nn.Module:
    delta.wrap_projections(model, tuple(cfg.targets), lambda p: DoRAAdapter(p.weight(), cfg.r, cfg.scaling), cfg.dropout)
    return model


def merge(model: nn.Module) -> nn.Module:
    return delta.merge_all(model)


def describe(sd: Mapping[str, torch.Tensor]) -> str | None:
    """LoRA factors with a ``magnitude`` vector beside them."""
    keys = list(sd)
    if not any(k.endswith("lora_A") for k in keys) or not any(k.endswith("magnitude") for k in keys):
        return None
    return low_rank_text("dora", sd)


SPECS = [MethodSpec("dora", DoRAConfig, apply, merge, description="DoRA: magnitude x direction of W0 + s B A",
                    describe=describe, label="DoRA")]

__all__ = ["DoRAConfig", "DoRAAdapter", "SPECS", "targets"]
