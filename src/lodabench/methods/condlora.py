"""CondLoRA (Kim et al., 2024, "A Single Linear Layer Yields Task-Adapted Low-Rank Matrices").

Instead of a free (A, B) pair per layer, one trainable linear map per module type m (q, v) is
shared by ALL layers and turns each layer's frozen weight W0 into that layer's low-rank matrices.
The update is applied as h = W_lin x + s * B A x with s = alpha / r, like LoRA, where
W_lin (d_out, d_in) is the nn.Linear-orientation weight ``targets.Projection.weight()`` returns
for every family (for GPT-2 the Conv1D column slice, transposed), A is (r, d_in), B (d_out, r).

Which matrix is "W0" is a choice the paper's notation leaves open; ``method.w0`` picks it:

* ``linear`` (default): the official code's orientation. In CyberAgentAILab/CondLoRA,
  src/ConditionalLoRA/src/peft/tuners/condlora/layer.py (``Linear.forward``), the shared maps
  are ``nn.Linear(in_features, r, bias=False)`` applied to the layer's nn.Linear weight:
  ``lora_A = linear_for_lora_A(self.weight).T`` and ``lora_B = linear_for_lora_B(self.weight)``,
  i.e. with theta = the map's weight transposed (d, r):

      A = (W_lin theta_A)^T   (r, d_out)        B = W_lin theta_B   (d_out, r)
      dW = B A = W_lin theta_B theta_A^T W_lin^T

  A must be (r, d_in), so this type-checks only for square W0 (d_in = d_out: GPT-2, BERT,
  RoBERTa, MiniLM, LLaMA q_proj); ``validate`` refuses it otherwise. It is the default because
  the paper's numbers (RoBERTa GLUE) come from that code, and for square W0 it is a different
  model from ``input_major`` (the right factor is W_lin^T instead of W_lin), not a relabelling.
  Its authors' analysis script (src/conversion_matrix_analysis.py) inverts W_lin the same way:
  C_A = W_lin^{-1} A^T, C_B = W_lin^{-1} B.
* ``input_major``: W0 taken input-major, W0 = W_lin^T in R^{d_in x d_out} (y = x W0, the GPT-2
  Conv1D storage), in the equation form A = (W0 theta_A)^T, B = W0^T theta_B (CondLoRA eqs. 5-7
  as this module has always written them):

      A = theta_A^T W_lin   (r, d_in)           B = W_lin theta_B   (d_out, r)

  This type-checks for any shape, so it is the one to use for non-square projections (LLaMA
  GQA k/v_proj, e.g. SmolLM2 576 -> 192): ``method.w0=input_major``. It was lodabench's only
  orientation before ``method.w0`` existed.

B is the same under both; only A differs (theta_A^T W_lin^T vs theta_A^T W_lin). Note the
official code is not that equation form with W0 = W_lin (which would give B = W_lin^T theta_B):
it feeds the same nn.Linear weight to both maps.

Shapes: theta_A (d_out, r), theta_B (d_in, r) under both (for ``linear`` d_in = d_out, and the
official maps' weights are (r, d) each). Trainable: (d_in + d_out) r per module type,
independent of the number of layers (GPT-2 medium r=4, q+v: 2 * 2 * 4 * 1024 = 16,384). Init as
LoRA and the official code: theta_A kaiming_uniform(a=sqrt(5)), theta_B = 0, so B = 0 and the
model is unchanged at step 0. The update is linear in the weights, so it merges (each layer's
B A is written into its W0).

The shared maps live in ``model.condlora`` (a ModuleDict keyed by module type); each layer's
adapter only points at them, so the trainable state dict holds each theta once.

Cost. A and B depend on the trained theta, so each forward rebuilds them per layer (the paper,
Sec. 5: "the calculations are required per each iteration"): r d_in d_out MACs each, plus the
same again in the backward, independent of the batch. Under ``linear`` both are W_lin times a
theta, so ``rebuild_pair`` computes them with ONE matmul, W_lin [theta_A | theta_B] (d, 2r),
instead of two skinny (d, r) ones: the same numbers up to float rounding (tests compare outputs
and gradients), 0.87-0.91x the rebuild time on CPU (results/bench/*-cost-claims.md; the rebuild
is 0.6 % of a RoBERTa-base step at batch 16, 8-13 % at batch 1). ``low_rank_pair`` is the
reference; ``input_major`` has a different left factor for A (theta_A^T W_lin) and keeps the
two products.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from lodabench.errors import ConfigError
from lodabench.methods import delta, targets
from lodabench.methods.base import LoRAStyleConfig, MethodSpec, and_model, check_choice, hp

W0_ORIENTATIONS = ("linear", "input_major")


def low_rank_pair(w_lin: torch.Tensor, theta_a: torch.Tensor, theta_b: torch.Tensor,
                  w0: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A (r, d_in), B (d_out, r) of one layer from its nn.Linear weight (module docstring)."""
    if w0 == "linear":
        return (w_lin @ theta_a).t(), w_lin @ theta_b
    if w0 == "input_major":
        return theta_a.t() @ w_lin, w_lin @ theta_b
    raise ConfigError(f"method.w0={w0!r} is not one of {list(W0_ORIENTATIONS)}. "
                      f"Fix: set method.w0 to one of {list(W0_ORIENTATIONS)}")


def rebuild_pair(w_lin: torch.Tensor, theta_a: torch.Tensor, theta_b: torch.Tensor,
                 w0: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``low_rank_pair`` as the forward computes it: one matmul for A and B under ``linear``."""
    if w0 != "linear":
        return low_rank_pair(w_lin, theta_a, theta_b, w0)
    r = theta_a.shape[1]
    ab = w_lin @ torch.cat((theta_a, theta_b), dim=1)  # (d_out, 2r) = [W_lin theta_A | W_lin theta_B]
    return ab[:, :r].t(), ab[:, r:]


@dataclass
class CondLoRAConfig(LoRAStyleConfig):
    name: str = hp("condlora", "config name of the method")
    w0: str = hp("linear", "orientation of W0: 'linear' = the official code's W0 = W_lin (out, in), "
                 "A = (W_lin theta_A)^T, B = W_lin theta_B (square projections only); 'input_major' = "
                 "W0 = W_lin^T, A = theta_A^T W_lin, B = W_lin theta_B (works for non-square, e.g. GQA v_proj)")

    def validate(self, model: nn.Module | None = None) -> None:
        super().validate()
        check_choice(self, "w0", W0_ORIENTATIONS)
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        super().check_model(model)
        if self.w0 == "linear":
            for n in self.targets:
                p = targets.projections(model, 0)[n]
                if p.in_features != p.out_features:
                    raise ConfigError(
                        f"method.w0='linear': the {n} projection is not square (nn.Linear weight "
                        f"(out={p.out_features}, in={p.in_features})), and A = (W0 theta_A)^T with "
                        f"W0 = W_lin (the official CondLoRA code) only type-checks for square W0. "
                        f"Fix: set method.w0=input_major (W0 = W_lin^T), or adapt only square projections")


class SharedMaps(nn.Module):
    """theta_A (d_out, r) and theta_B (d_in, r) of one module type."""

    def __init__(self, d_in: int, d_out: int, r: int):
        super().__init__()
        self.theta_A = nn.Parameter(torch.empty(d_out, r))
        self.theta_B = nn.Parameter(torch.zeros(d_in, r))
        # kaiming_uniform(a=sqrt(5)) with fan_in = d_out, as LoRA's A init uses its fan-in.
        bound = 1.0 / math.sqrt(d_out)
        nn.init.uniform_(self.theta_A, -bound, bound)


class CondLoRAAdapter(delta.DeltaAdapter):
    mergeable = True
    # False: the two-matmul reference (low_rank_pair); the benchmark times both in one run.
    fused_rebuild = True

    def __init__(self, shared: SharedMaps, scaling: float, w0: str = "linear"):
        super().__init__()
        # Keep a reference WITHOUT registering the shared module here (it is registered once on
        # the model), so each theta appears once in named_parameters / the checkpoint.
        object.__setattr__(self, "_shared", shared)
        self.scaling = scaling
        self.w0 = w0

    def matrices(self, w_lin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A (r, d_in), B (d_out, r) for this layer's W_lin (d_out, d_in)."""
        pair = rebuild_pair if self.fused_rebuild else low_rank_pair
        return pair(w_lin, self._shared.theta_A, self._shared.theta_B, self.w0)

    def forward(self, x: torch.Tensor, ctx: delta.DeltaContext) -> torch.Tensor:
        a, b = self.matrices(ctx.weight().detach())
        return ((x @ a.t()) @ b.t()) * self.scaling

    def merged_weight(self, w0: torch.Tensor) -> torch.Tensor:
        a, b = self.matrices(w0)
        return w0 + (b @ a) * self.scaling


def apply(model: nn.Module, cfg: CondLoRAConfig) -> nn.Module:
    projs = targets.projections(model, 0)
    shared = nn.ModuleDict(
        {n: SharedMaps(projs[n].in_features, projs[n].out_features, cfg.r) for n in cfg.targets}
    )
    shared.to(device=projs["q"].weight().device)
    model.condlora = shared
    delta.wrap_projections(model, tuple(cfg.targets),
                           lambda p: CondLoRAAdapter(shared[p.name], cfg.scaling, cfg.w0), cfg.dropout)
    return model


def merge(model: nn.Module) -> nn.Module:
    delta.merge_all(model)
    if hasattr(model, "condlora"):
        del model.condlora
    return model


def describe(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The layer-shared conversion matrices ``theta_A`` (their last dimension is r)."""
    theta_a = next((k for k in sd if "theta_A" in k), None)
    return None if theta_a is None else f"condlora with r={sd[theta_a].shape[-1]}"


SPECS = [MethodSpec("condlora", CondLoRAConfig, apply, merge, description="CondLoRA: layer-shared maps from W0 to A, B",
                    describe=describe, label="CondLoRA")]
