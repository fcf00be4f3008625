"""LoDA and LoDA+ (Liu et al., "LoDA: Low-Dimensional Adaptation of Large Language Models").

LoRA's update x -> x A B (row-vector notation, A: d_in x r, B: r x d_out) becomes a
low-dimensional NON-linear map:

    LoDA :  dh = s * ( xA B + f1(xA) B )          = s * (z + f1(z)) B,   z = dropout(x) A
    LoDA+:  dh = s * ( xA B + f2(f1(xA) B) )

with s = alpha / r.

What the paper says about f1 and f2 (../shared/papers/loda_liu2023.txt):
- Sec. 2: "f_1(.) is a non-linear function between matrix A and matrix B, which consists of a
  series of linear layers and non-linear operations (e.g., LeakyReLU activation,
  layer-normalization). Note that Figure 1b is just an example of a LoDA structure, e.g., the
  non-linear part between matrix A and matrix B could have more layers than illustrated, and may
  use non-square matrices." LoRA is the special case "if f_1(xA)B is zero (e.g., a hidden layer's
  weights in LoDA are zero) or if f_1(.) is linear".
- LoDA+: "the additional non-linear function f_2(.), e.g., non-linear activation and/or
  layer-normalization"; Fig. 1 caption: "the non-linear part has additional non-linear operations
  after B (e.g., LeakyReLU)".
- "Number of fine-tuning parameters": "the matrices A and B in all methods are of shape d by r.
  The proposed methods have additional two r by r bottleneck matrices. Their non-linear activation
  function is LeakyReLU with fixed slope 0.8, and their layer-normalization is not trainable. So,
  the total number of trainable parameters for LoRA is 2rdL, and for all proposed methods is
  2(rd+r^2)L".
- App. A.4: "the two bottleneck matrices in Figure 1b-Figure 1e are r by r square matrices, and
  there are some non-linear activation and/or layer-normalization layers".

So the paper fixes: two r x r maps (``depth=2``) of r^2 numbers each (2(rd+r^2)L: no bias),
LeakyReLU with slope 0.8, a LayerNorm without trainable parameters, and the residual z + f1(z)
between A and B.
It does NOT fix the order of norm, maps and activations, whether an activation follows the last
map, where f1's LayerNorm sits, what f2 contains beyond "e.g. LeakyReLU", nor the init of the
r x r maps; we found no public reference code. Our choices (each a config value where it is one):
- f1 is pre-norm, as the transformer blocks LoDA is inserted into, with the activation between
  consecutive maps only:

      f1(z) = W_depth ( act( ... act( W_1 LN(z) ) ... ) )

  (``norm=layernorm``: LayerNorm without affine parameters at f1's input; ``activation``,
  ``negative_slope``, ``depth`` as above);
- f2 = the same LeakyReLU on the d_out-dim output, with no LayerNorm (``plus``);
- the r x r maps use nn.Linear's default init (kaiming_uniform(a=sqrt(5))), without bias.

Consequences we rely on and test:
- zeroing the last map W_depth (or the first, since act(0) = 0 for LeakyReLU) makes f1 = 0, so
  LoDA reduces EXACTLY to LoRA with the same A, B ("LoDA includes LoRA as a special case"); for
  LoDA+ f2(0) = 0 so the same holds;
- B = 0 at init (as LoRA), so the model is unchanged at step 0;
- trainable per adapted slice: r*(d_in + d_out) + depth * r^2 (LayerNorm has no parameters):
  GPT-2 medium, r=4, q+v, depth 2: 393,216 + 24*2*2*16 = 394,752.
LoDA is not linear in the weights, so it has no merge (merge_method raises ConfigError).

On GPT-2 (q and v slices of one c_attn) the slots run as one batched chain (``LoDAAdapter.batched``:
stacked A, one LayerNorm, bmm for the maps and B), with ~74 % fewer extra operator calls (92 vs 352 on tiny-gpt2) than the
per-slot chain (docs/benchmarks.md); per-slot ``forward`` stays for single slots and is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lodabench.methods import delta
from lodabench.methods.base import (
    LoRAStyleConfig, MethodSpec, and_model, check_choice, check_positive_int, fail, hp, low_rank_text, rng,
)
from lodabench.methods.lora import LoRAAdapter

ACTIVATIONS = ("leaky_relu", "relu", "gelu", "tanh", "identity")
NORMS = ("layernorm", "none")


@dataclass
class LoDAConfig(LoRAStyleConfig):
    name: str = hp("loda", "config name of the method")
    depth: int = hp(2, "number of r x r linear maps in f1 (LoDA paper: 2)", rng("[1, inf)"))
    activation: str = hp("leaky_relu", "nonlinearity between f1's maps (LoDA paper: LeakyReLU)")
    negative_slope: float = hp(0.8, "LeakyReLU negative slope (LoDA paper: 0.8)", rng("(-inf, inf)"))
    norm: str = hp("layernorm", "normalisation at f1's input: layernorm (no affine) | none")
    plus: bool = hp(False, "LoDA+: apply f2 = the same activation to f1(xA)B (set by loda_plus)")

    def validate(self, model: nn.Module | None = None) -> None:
        super().validate()
        check_positive_int(self, "depth")
        check_choice(self, "activation", ACTIVATIONS)
        check_choice(self, "norm", NORMS)
        if not isinstance(self.negative_slope, (int, float)) or isinstance(self.negative_slope, bool):
            raise fail("negative_slope", self.negative_slope, "must be a number", "set e.g. method.negative_slope=0.8")
        if self.plus != (self.name.endswith("_plus")):
            raise fail("plus", self.plus, f"contradicts method.name={self.name}",
                       "leave method.plus unset; choose loda or loda_plus (r_loda_plus, s_loda_plus) instead")
        and_model(self, model)


@dataclass
class LoDAPlusConfig(LoDAConfig):
    name: str = hp("loda_plus", "config name of the method")
    plus: bool = hp(True, "LoDA+: apply f2 = the same activation to f1(xA)B")


def activation(name: str, negative_slope: float):
    return {
        "leaky_relu": lambda t: F.leaky_relu(t, negative_slope),
        "relu": F.relu,
        "gelu": F.gelu,
        "tanh": torch.tanh,
        "identity": lambda t: t,
    }[name]


class LowDimMLP(nn.Module):
    """f1: pre-LayerNorm (no affine), then ``depth`` bias-free r x r maps with act between."""

    def __init__(self, r: int, depth: int, act: str, negative_slope: float, norm: str):
        super().__init__()
        self.norm = nn.LayerNorm(r, elementwise_affine=False) if norm == "layernorm" else nn.Identity()
        self.maps = nn.ModuleList(nn.Linear(r, r, bias=False) for _ in range(depth))
        self.act_name, self.negative_slope = act, negative_slope

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        act = activation(self.act_name, self.negative_slope)
        h = self.norm(z)
        for i, m in enumerate(self.maps):
            h = m(h)
            if i < len(self.maps) - 1:
                h = act(h)
        return h


class LoDAAdapter(LoRAAdapter):
    mergeable = False

    def __init__(self, in_features: int, out_features: int, cfg: LoDAConfig):
        super().__init__(in_features, out_features, cfg.r, cfg.scaling)
        self.f1 = LowDimMLP(cfg.r, cfg.depth, cfg.activation, cfg.negative_slope, cfg.norm)
        self.plus = cfg.plus
        self.f2_name, self.negative_slope = cfg.activation, cfg.negative_slope

    def forward(self, x: torch.Tensor, ctx: delta.DeltaContext) -> torch.Tensor:
        z = self.low(x)
        if not self.plus:
            return ((z + self.f1(z)) @ self.lora_B.t()) * self.scaling
        f2 = activation(self.f2_name, self.negative_slope)
        return (z @ self.lora_B.t() + f2(self.f1(z) @ self.lora_B.t())) * self.scaling

    def merged_weight(self, w0: torch.Tensor) -> torch.Tensor:
        return delta.DeltaAdapter.merged_weight(self, w0)

    def chain(self) -> tuple:
        """What must agree for adapters to run as one batched chain (``batched``)."""
        return (self.lora_A.shape, self.lora_B.shape, len(self.f1.maps), self.f1.act_name, self.f1.negative_slope,
                type(self.f1.norm), self.plus, self.f2_name, self.negative_slope, self.scaling)

    @classmethod
    def batched(cls, adapters: list[delta.DeltaAdapter], x: torch.Tensor) -> list[torch.Tensor] | None:
        """All slots' chains at once (issue #30: GPU steps are launch-bound, and q and v read the same
        x): one matmul with the A factors stacked, f1's LayerNorm on a (N, slots, r) view (it normalises
        each slot's r numbers, as per slot), and each r x r map, and B, as one bmm over the slots. The
        parameters stay per slot (names, shapes, state dict unchanged), so outputs equal the per-slot
        ``forward`` up to float summation order (tests/test_methods_loda_batched.py)."""
        a0 = adapters[0]
        if any(a.chain() != a0.chain() for a in adapters):
            return None
        k, r = len(adapters), a0.lora_A.shape[0]
        z = (x.reshape(-1, x.shape[-1]) @ torch.cat([a.lora_A for a in adapters]).t()).view(-1, k, r)
        h = a0.f1.norm(z).transpose(0, 1)  # (k, N, r)
        act = activation(a0.f1.act_name, a0.f1.negative_slope)
        for i in range(len(a0.f1.maps)):
            h = torch.bmm(h, torch.stack([a.f1.maps[i].weight for a in adapters]).transpose(1, 2))
            if i < len(a0.f1.maps) - 1:
                h = act(h)
        z, b = z.transpose(0, 1), torch.stack([a.lora_B for a in adapters]).transpose(1, 2)  # (k, r, out)
        if a0.plus:
            d = torch.bmm(z, b) + activation(a0.f2_name, a0.negative_slope)(torch.bmm(h, b))
        else:
            d = torch.bmm(z + h, b)
        d = d * a0.scaling
        return [t.view(*x.shape[:-1], -1) for t in d.unbind(0)]


def apply(model: nn.Module, cfg: LoDAConfig) -> nn.Module:
    delta.wrap_projections(
        model, tuple(cfg.targets), lambda p: LoDAAdapter(p.in_features, p.out_features, cfg), cfg.dropout
    )
    return model


def describe(sd: Mapping[str, torch.Tensor]) -> str | None:
    """LoRA factors with f1's r x r maps beside them. LoDA, LoDA+ and R-/S-LoDA(+) train the same
    tensors (the frozen approximations of W_proj are not trainable), so the text names all of them."""
    maps = [k for k in sd if ".f1.maps." in k]
    if not maps or not any(k.endswith("lora_A") for k in sd):
        return None
    depth = len({k.split(".f1.maps.")[1].split(".")[0] for k in maps})
    return low_rank_text(f"loda/loda_plus/r_loda*/s_loda* (f1 depth {depth})", sd)


SPECS = [
    MethodSpec("loda", LoDAConfig, apply, None, description="LoDA: s*(xA + f1(xA))B", describe=describe,
               label="LoDA"),
    MethodSpec("loda_plus", LoDAPlusConfig, apply, None, description="LoDA+: s*(xAB + f2(f1(xA)B))", describe=describe,
               label="LoDA+"),
]
