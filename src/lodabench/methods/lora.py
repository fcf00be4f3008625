"""LoRA (Hu et al., 2021): h = W0 x + (alpha/r) * B A x on exactly the configured slices (q, v).

A (r, in) is initialised kaiming_uniform(a=sqrt(5)) and B (out, r) to zero, as loralib and PEFT
do, so the model is unchanged at step 0. On GPT-2 the fused c_attn gets one (A, B) pair per
adapted slice, never one shared A over q, k, v; the k columns get no update. Parameter names
(``lora_A`` (r, in), ``lora_B`` (out, r)) and shapes follow PEFT so checkpoints export 1:1.

Trainable per adapted slice: r*(in + out); GPT-2 medium, r=4, q+v: 24 * 2 * 4 * 2048 = 393,216.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from lodabench.methods import delta, targets
from lodabench.methods.base import LoRAStyleConfig, MethodSpec, hp, low_rank_text, method_keys


@dataclass
class LoRAConfig(LoRAStyleConfig):
    name: str = hp("lora", "config name of the method")


class LoRAAdapter(delta.DeltaAdapter):
    mergeable = True

    def __init__(self, in_features: int, out_features: int, r: int, scaling: float):
        super().__init__()
        self.scaling = scaling
        self.lora_A = nn.Parameter(torch.empty(r, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def low(self, x: torch.Tensor) -> torch.Tensor:
        """x A^T: the r-dimensional code every LoRA-family method starts from."""
        return x @ self.lora_A.t()

    def forward(self, x: torch.Tensor, ctx: delta.DeltaContext) -> torch.Tensor:
        return (self.low(x) @ self.lora_B.t()) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    def merged_weight(self, w0: torch.Tensor) -> torch.Tensor:
        return w0 + self.delta_weight().to(w0.dtype)


def apply(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    delta.wrap_projections(
        model,
        tuple(cfg.targets),
        lambda p: LoRAAdapter(p.in_features, p.out_features, cfg.r, cfg.scaling),
        cfg.dropout,
    )
    return model


def merge(model: nn.Module) -> nn.Module:
    return delta.merge_all(model)


def describe(sd: Mapping[str, torch.Tensor]) -> str | None:
    """LoRA's state dict holds the factors only (plus a head): DoRA's magnitude or LoDA's f1 maps
    beside them make it theirs, not this method's."""
    own = method_keys(sd)
    if not any(k.endswith("lora_A") for k in own) or not all(k.endswith(("lora_A", "lora_B")) for k in own):
        return None
    return low_rank_text("lora", sd)


SPECS = [
    MethodSpec("lora", LoRAConfig, apply, merge, description="LoRA: W0 + (alpha/r) B A on q, v", describe=describe,
               label="LoRA"),
]

__all__ = ["LoRAConfig", "LoRAAdapter", "apply", "merge", "SPECS", "targets"]
