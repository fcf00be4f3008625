"""The one wrapper every weight-delta method (lora, loda(+), r/s-loda(+), condlora, dora) uses.

``AdaptedProjection`` replaces the module that computes q/k/v (GPT-2's fused ``c_attn`` Conv1D, or
a BERT/LLaMA ``query``/``q_proj`` Linear). It keeps the original module untouched as
``base_layer`` and adds, per adapted column slice ("q", "v", ...), the output of one
``DeltaAdapter``:

    out = base_layer(x);   out[..., start:end] += adapter(dropout(x), ctx)

Nothing is merged implicitly (no merge on ``eval()``); ``merge()`` is explicit and returns the
plain base module with the delta written into its weight. Because each slice has its own
adapter, GPT-2's k columns never receive a delta (unlike a single LoRA over the whole c_attn).

Dropout is applied once to the input and shared by the slices of one wrapper, as loralib's
``MergedLinear`` does for GPT-2.

When all adapted slices of one wrapper have adapters of one type with a ``batched`` classmethod
(LoDA(+)), their deltas are computed together in one chain (fewer operator launches, issue #30);
otherwise, and for every other method, each slice's adapter runs alone as above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from lodabench.errors import ConfigError
from lodabench.methods import targets


@dataclass
class DeltaContext:
    """What an adapter may need besides its input: the frozen slice of the base layer."""

    base_out: torch.Tensor  # base_layer(x)[..., start:end], bias included
    weight: Callable[[], torch.Tensor]  # W0 of the slice, (out, in)
    bias: Callable[[], torch.Tensor | None]
    x: torch.Tensor  # the input before dropout
    dropout_active: bool  # True when the adapter input differs from x


class DeltaAdapter(nn.Module):
    """Computes the additive output delta for one slice; subclasses define the method."""

    mergeable: bool = False

    def forward(self, x: torch.Tensor, ctx: DeltaContext) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def batched(cls, adapters: list["DeltaAdapter"], x: torch.Tensor) -> list[torch.Tensor] | None:
        """The deltas of several same-type adapters reading the same input, computed together (fewer
        operator launches), or None when the method has no batched path (each adapter runs alone)."""
        return None

    def merged_weight(self, w0: torch.Tensor) -> torch.Tensor:
        """The slice's new weight (out, in) once the update is folded in."""
        raise ConfigError(f"{type(self).__name__} is not linear in the weights and cannot be merged")


class AdaptedProjection(nn.Module):
    def __init__(
        self,
        base_layer: nn.Module,
        slices: dict[str, tuple[int, int]],
        adapters: dict[str, DeltaAdapter],
        dropout: float = 0.0,
    ):
        super().__init__()
        self.base_layer = base_layer
        self.slices = dict(slices)
        self.adapters = nn.ModuleDict(adapters)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.stores_in_out = targets._is_conv1d(base_layer)

    # W0 of a slice in (out, in) orientation, whatever the storage.
    def slice_weight(self, name: str) -> torch.Tensor:
        s, e = self.slices[name]
        w = targets._weight_of(self.base_layer)
        return w[:, s:e].t() if self.stores_in_out else w[s:e]

    def slice_bias(self, name: str) -> torch.Tensor | None:
        b = getattr(self.base_layer, "bias", None)
        if b is None:
            return None
        s, e = self.slices[name]
        return b[s:e]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if not self.adapters:
            return out
        xd = self.dropout(x)
        dropout_active = self.training and isinstance(self.dropout, nn.Dropout)
        order = [(n, se) for n, se in sorted(self.slices.items(), key=lambda kv: kv[1][0]) if n in self.adapters]
        deltas = self._batched_deltas([n for n, _ in order], xd)
        # Walk the output columns in order, adding the delta to adapted slices only.
        pieces, pos = [], 0
        for i, (name, (s, e)) in enumerate(order):
            if s > pos:
                pieces.append(out[..., pos:s])
            base = out[..., s:e]
            if deltas is not None:
                pieces.append(base + deltas[i].to(base.dtype))
                pos = e
                continue
            ctx = DeltaContext(
                base_out=base,
                weight=lambda n=name: self.slice_weight(n),
                bias=lambda n=name: self.slice_bias(n),
                x=x,
                dropout_active=dropout_active,
            )
            pieces.append(base + self.adapters[name](xd, ctx).to(base.dtype))
            pos = e
        if pos < out.shape[-1]:
            pieces.append(out[..., pos:])
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)

    def _batched_deltas(self, names: list[str], xd: torch.Tensor) -> list[torch.Tensor] | None:
        """One batched computation for all slices when their adapters are of one type that has one
        (LoDA: q and v read the same x, so their chains run as one; issue #30's launch count)."""
        adapters = [self.adapters[n] for n in names]
        kind = type(adapters[0])
        if len(adapters) < 2 or any(type(a) is not kind for a in adapters):
            return None
        return kind.batched(adapters, xd)

    @torch.no_grad()
    def merge(self) -> nn.Module:
        """Write every adapter's update into the base weight and return the plain base module."""
        w = targets._weight_of(self.base_layer)
        for name, adapter in self.adapters.items():
            s, e = self.slices[name]
            new = adapter.merged_weight(self.slice_weight(name).clone()).to(w.dtype)
            if self.stores_in_out:
                w[:, s:e] = new.t()
            else:
                w[s:e] = new
        return self.base_layer


def wrap_projections(
    model: nn.Module,
    target_names: tuple[str, ...],
    make_adapter: Callable[[targets.Projection], DeltaAdapter],
    dropout: float,
) -> None:
    """Replace each layer's q/k/v holder(s) by an AdaptedProjection with adapters on ``target_names``.

    GPT-2: one wrapper per c_attn with one adapter per adapted slice. Linear families: one wrapper
    per adapted Linear.
    """
    for layer in range(targets.num_layers(model)):
        projs = targets.projections(model, layer)
        by_holder: dict[tuple[int, str], list[targets.Projection]] = {}
        for n in target_names:
            p = projs[n]
            by_holder.setdefault((id(p.parent), p.attr), []).append(p)
        for plist in by_holder.values():
            parent, attr = plist[0].parent, plist[0].attr
            base = getattr(parent, attr)
            slices = {n: (projs[n].start, projs[n].end) for n in "qkv" if projs[n].attr == attr and projs[n].parent is parent}
            device = targets._weight_of(targets._base_of(base)).device
            adapters = {p.name: make_adapter(p).to(device=device) for p in plist}
            setattr(parent, attr, AdaptedProjection(base, slices, adapters, dropout))


def merge_all(model: nn.Module) -> nn.Module:
    """Replace every AdaptedProjection by its merged base module (outputs unchanged)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, AdaptedProjection):
            targets.set_module(model, name, module.merge())
    return model
