"""R-LoDA(+) and S-LoDA(+): a frozen approximation of W_proj plus a LoDA(+) adapter on q, v.

W_proj = [Wq, Wk, Wv] is each layer's fused query/key/value projection, input-major (d_in, d_q +
d_k + d_v): GPT-2's c_attn weight as stored; for BERT/RoBERTa/LLaMA the three matrices side by
side. It is replaced, frozen, by

- R-LoDA: its rank-R truncated SVD, W_proj ~ U_R S_R V_R^T = W_A W_B with W_A = U_R S_R
  (d_in, R) and W_B = V_R^T (R, d_out), evaluated as two thin matmuls (x W_A) W_B (+ bias, kept
  exactly). R = ``method.rank`` (LoDA paper: 300/400/500 on GPT-2 medium, d=1024).
- S-LoDA: magnitude pruning over the WHOLE fused matrix (one global threshold across q, k, v):
  the ``keep`` fraction of entries with the largest |w| stays, the rest is set to 0 (ties broken
  by torch.topk). ``method.storage`` picks how the frozen pruned matrix is executed:

  * ``dense`` (default): zeros kept and multiplied; the fastest on GPU and on this CPU.
  * ``sparse_csr``: a torch sparse CSR matrix (``torch.sparse.mm``, MKL on x86 CPUs): the same
    numbers, only the non-zeros are multiplied. At the paper's densities (0.4-0.6) it is slower
    than the dense GEMM on CPU (results/bench/*-cost-claims.md); it is the honest "sparse
    execution" of the paper's unstructured mask.
  * ``semi24``: NVIDIA 2:4 semi-structured sparsity (``torch.sparse.to_sparse_semi_structured``,
    CUDA compute capability >= 8.0). A different mask from the paper's: in every group of 4
    consecutive input weights of an output row the 2 largest |w| stay, so exactly half of each
    row (``keep`` must be 0.5) instead of one global threshold. A named deviation, for timing the
    hardware path; ``validate`` refuses it before training where the hardware or torch lacks it.

The LoDA(+) adapter is then applied on top exactly as in loda.py. The approximation is not
trainable and not part of the trainable checkpoint: it is recomputed from the base weights,
deterministically, when the method is applied again.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lodabench.errors import ConfigError
from lodabench.methods import loda, targets
from lodabench.methods.base import MethodSpec, and_model, check_choice, check_fraction, check_positive_int, fail, hp, rng


@dataclass
class RLoDAConfig(loda.LoDAConfig):
    name: str = hp("r_loda", "config name of the method")
    rank: int = hp(400, "rank R of the frozen truncated SVD of W_proj (LoDA paper: 300/400/500)", rng("[1, inf)"))

    def validate(self, model: nn.Module | None = None) -> None:
        super().validate()
        check_positive_int(self, "rank")
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        super().check_model(model)
        fp = targets.fused_projection(model, 0)
        limit = min(fp.in_features, fp.out_features)
        if self.rank > limit:
            raise fail("rank", self.rank, f"exceeds min(d_in={fp.in_features}, d_q+d_k+d_v={fp.out_features})"
                       f"={limit} of the fused projection W_proj", f"set method.rank <= {limit}")


@dataclass
class RLoDAPlusConfig(RLoDAConfig):
    name: str = hp("r_loda_plus", "config name of the method")
    plus: bool = hp(True, "LoDA+ adapter")


STORAGES = ("dense", "sparse_csr", "semi24")


def semi24_unsupported_reason() -> str | None:
    """Why 2:4 semi-structured kernels cannot run here (None when they can): they need torch's
    ``to_sparse_semi_structured`` and a CUDA GPU of compute capability >= 8.0 (Ampere or newer)."""
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return f"torch {torch.__version__} has no torch.sparse.to_sparse_semi_structured"
    if not torch.cuda.is_available():
        return "2:4 semi-structured sparse kernels need a CUDA GPU (compute capability >= 8.0); none is visible"
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return (f"2:4 semi-structured sparse kernels need compute capability >= 8.0; "
                f"{torch.cuda.get_device_name()} has {major}.{minor}")
    return None


@dataclass
class SLoDAConfig(loda.LoDAConfig):
    name: str = hp("s_loda", "config name of the method")
    keep: float = hp(0.5, "fraction of W_proj entries kept by magnitude pruning (LoDA paper: 0.4/0.5/0.6)",
                      rng("(0, 1]"))
    storage: str = hp("dense", "execution of the frozen pruned W_proj: dense (zeros multiplied) | sparse_csr "
                      "(torch CSR kernel, same numbers) | semi24 (2:4 mask + CUDA semi-structured kernel, keep=0.5)")

    def validate(self, model: nn.Module | None = None) -> None:
        super().validate()
        check_fraction(self, "keep", low_inclusive=False, high_inclusive=True)
        check_choice(self, "storage", STORAGES)
        if self.storage == "semi24":
            self._validate_semi24()
        and_model(self, model)

    def _validate_semi24(self) -> None:
        if self.keep != 0.5:
            raise fail("keep", self.keep, "method.storage=semi24 keeps exactly 2 of every 4 weights",
                       "set method.keep=0.5, or method.storage=dense|sparse_csr for other fractions")
        why = semi24_unsupported_reason()
        if why is not None:
            raise fail("storage", "semi24", why, "use method.storage=dense or method.storage=sparse_csr "
                       "(the paper's global magnitude mask) on this machine")

    def check_model(self, model: nn.Module) -> None:
        super().check_model(model)
        if self.storage == "semi24" and targets.fused_projection(model, 0).in_features % 4:
            width = targets.fused_projection(model, 0).in_features
            raise fail("storage", "semi24", f"the fused projection's input width {width} is not a "
                       "multiple of 4 (2:4 groups)", "use method.storage=dense or sparse_csr")


@dataclass
class SLoDAPlusConfig(SLoDAConfig):
    name: str = hp("s_loda_plus", "config name of the method")
    plus: bool = hp(True, "LoDA+ adapter")


class FrozenFactorised(nn.Module):
    """y = (x W_A) W_B[:, cols] + bias: one projection (or the fused one) of a rank-R W_proj.

    ``stores_in_out`` tells targets.py how to read ``dense_weight()`` (Conv1D-like (in, out) when
    it replaces GPT-2's c_attn, Linear-like (out, in) when it replaces a query/key/value).
    """

    def __init__(self, w_a: nn.Parameter, w_b: torch.Tensor, bias: torch.Tensor | None, stores_in_out: bool):
        super().__init__()
        self.w_a = w_a  # (in, R), shared by q/k/v of one layer in the Linear families
        self.w_b = nn.Parameter(w_b.contiguous(), requires_grad=False)  # (R, out)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.stores_in_out = stores_in_out
        self.in_features, self.out_features = int(w_a.shape[0]), int(w_b.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x @ self.w_a) @ self.w_b
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        w = self.w_a @ self.w_b
        return w if self.stores_in_out else w.t()


class FrozenSparse(nn.Module):
    """y = x W^T + b with W (out, in) stored as a torch sparse CSR tensor."""

    def __init__(self, w_out_in: torch.Tensor, bias: torch.Tensor | None, stores_in_out: bool):
        super().__init__()
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            self.register_buffer("w_csr", w_out_in.detach().to_sparse_csr())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.stores_in_out = stores_in_out
        self.out_features, self.in_features = int(w_out_in.shape[0]), int(w_out_in.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.w_csr, flat.t().to(self.w_csr.dtype)).t().to(x.dtype)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        w = self.w_csr.to_dense()
        return w.t() if self.stores_in_out else w


class _Semi24Linear(torch.autograd.Function):
    """y = x W^T through the 2:4 kernel; grad_x = grad_y W with the dense copy (W is frozen, so
    no weight gradient, and the backward does not rely on a transposed semi-structured matmul)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_dense: torch.Tensor, w_semi: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w_dense)
        flat = x.reshape(-1, x.shape[-1]).to(w_dense.dtype)
        return F.linear(flat, w_semi).reshape(*x.shape[:-1], w_dense.shape[0]).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (w_dense,) = ctx.saved_tensors
        return (grad.to(w_dense.dtype) @ w_dense).to(grad.dtype), None, None


class FrozenSemi24(nn.Module):
    """y = x W^T + b with W (out, in) 2:4-sparse, run by torch's semi-structured CUDA kernels.

    The dense masked W is the buffer (it moves with ``.to()`` and is the reference); the packed
    semi-structured copy is built on first use on each device/dtype. On a device without the
    kernels the forward raises the same ConfigError ``SLoDAConfig.validate`` gives.
    """

    def __init__(self, w_out_in: torch.Tensor, bias: torch.Tensor | None, stores_in_out: bool):
        super().__init__()
        self.register_buffer("w", w_out_in.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.stores_in_out = stores_in_out
        self.out_features, self.in_features = int(w_out_in.shape[0]), int(w_out_in.shape[1])
        self._packed: tuple[tuple, torch.Tensor] | None = None

    def semi_structured(self) -> torch.Tensor:
        why = semi24_unsupported_reason() if self.w.device.type == "cuda" else "the model is on the CPU"
        if why is not None:
            raise fail("storage", "semi24", why, "use method.storage=dense or method.storage=sparse_csr")
        key = (self.w.device, self.w.dtype, self.w.data_ptr())
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, torch.sparse.to_sparse_semi_structured(self.w))
        return self._packed[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _Semi24Linear.apply(x, self.w, self.semi_structured())
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        return self.w.t() if self.stores_in_out else self.w


def truncated_svd(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """w (m, n) ~ W_A (m, rank) @ W_B (rank, n), the best rank-``rank`` approximation."""
    if w.is_meta:  # parameter counting without weights: shapes only
        return torch.empty(w.shape[0], rank, device="meta"), torch.empty(rank, w.shape[1], device="meta")
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    w_a = (u[:, :rank] * s[:rank]).to(w.dtype)
    w_b = vh[:rank].to(w.dtype)
    return w_a, w_b


def magnitude_mask(w: torch.Tensor, keep: float) -> torch.Tensor:
    """Boolean mask of the round(keep * numel) entries of largest |w| over the whole matrix."""
    if w.is_meta:
        return torch.ones_like(w, dtype=torch.bool)
    k = int(round(keep * w.numel()))
    mask = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    if k > 0:
        mask[torch.topk(w.detach().abs().flatten(), k, sorted=False).indices] = True
    return mask.view_as(w)


def two_four_mask(w_out_in: torch.Tensor) -> torch.Tensor:
    """Boolean 2:4 mask of an (out, in) weight: in each group of 4 consecutive input weights of
    a row, the 2 of largest |w| (ties broken by torch.topk). The layout NVIDIA's sparse tensor
    cores and ``to_sparse_semi_structured`` require; exactly half of every row is kept."""
    out_f, in_f = w_out_in.shape
    if in_f % 4:
        raise ConfigError(f"2:4 sparsity needs the input width to be a multiple of 4, got {in_f}")
    if w_out_in.is_meta:
        return torch.ones_like(w_out_in, dtype=torch.bool)
    groups = w_out_in.detach().abs().reshape(out_f, in_f // 4, 4)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, groups.topk(2, dim=-1, sorted=False).indices, True)
    return mask.reshape(out_f, in_f)


def pruning_mask(w_in_out: torch.Tensor, keep: float, storage: str) -> torch.Tensor:
    """The S-LoDA mask of the fused (in, d_q+d_k+d_v) W_proj: global magnitude, or 2:4 per row."""
    if storage == "semi24":
        return two_four_mask(w_in_out.t()).t()
    return magnitude_mask(w_in_out, keep)


@torch.no_grad()
def _replace_low_rank(model: nn.Module, rank: int) -> None:
    for layer in range(targets.num_layers(model)):
        fp = targets.fused_projection(model, layer)
        w = fp.weight()  # (in, d_q+d_k+d_v)
        bias = fp.bias()
        w_a, w_b = truncated_svd(w, rank)
        shared_a = nn.Parameter(w_a, requires_grad=False)
        q = fp.parts["q"]
        if q.fused:  # GPT-2: one c_attn
            setattr(q.parent, q.attr, FrozenFactorised(shared_a, w_b, bias, stores_in_out=True))
            continue
        for n in "qkv":
            p = fp.parts[n]
            s, e = _column_range(fp, n)
            b = None if getattr(p.module, "bias", None) is None else p.bias()
            setattr(p.parent, p.attr, FrozenFactorised(shared_a, w_b[:, s:e], b, stores_in_out=False))


def _column_range(fp: targets.FusedProjection, name: str) -> tuple[int, int]:
    start = 0
    for n in "qkv":
        width = fp.parts[n].out_features
        if n == name:
            return start, start + width
        start += width
    raise KeyError(name)


FROZEN_SPARSE = {"sparse_csr": FrozenSparse, "semi24": FrozenSemi24}


@torch.no_grad()
def _replace_pruned(model: nn.Module, keep: float, storage: str) -> None:
    for layer in range(targets.num_layers(model)):
        fp = targets.fused_projection(model, layer)
        w = fp.weight()
        mask = pruning_mask(w, keep, storage)
        q = fp.parts["q"]
        if q.fused:
            module = q.module
            pruned = module.weight * mask  # module.weight is (in, 3d) like fp.weight()
            if storage == "dense":
                module.weight.copy_(pruned)
            else:
                setattr(q.parent, q.attr, FROZEN_SPARSE[storage](pruned.t(), module.bias, stores_in_out=True))
            continue
        for n in "qkv":
            p = fp.parts[n]
            s, e = _column_range(fp, n)
            module = p.module
            pruned = module.weight * mask[:, s:e].t()  # Linear weight (out, in)
            if storage == "dense":
                module.weight.copy_(pruned)
            else:
                setattr(p.parent, p.attr, FROZEN_SPARSE[storage](pruned, module.bias, stores_in_out=False))


def apply_r(model: nn.Module, cfg: RLoDAConfig) -> nn.Module:
    _replace_low_rank(model, cfg.rank)
    return loda.apply(model, cfg)


def apply_s(model: nn.Module, cfg: SLoDAConfig) -> nn.Module:
    _replace_pruned(model, cfg.keep, cfg.storage)
    return loda.apply(model, cfg)


# The trainable tensors are LoDA's (the approximation of W_proj is frozen): loda.describe names them.
SPECS = [
    MethodSpec("r_loda", RLoDAConfig, apply_r, None, description="frozen rank-R SVD of W_proj + LoDA",
               describe=loda.describe, label="R-LoDA"),
    MethodSpec("r_loda_plus", RLoDAPlusConfig, apply_r, None, description="frozen rank-R SVD of W_proj + LoDA+",
               describe=loda.describe, label="R-LoDA+"),
    MethodSpec("s_loda", SLoDAConfig, apply_s, None, description="frozen magnitude-pruned W_proj + LoDA",
               describe=loda.describe, label="S-LoDA"),
    MethodSpec("s_loda_plus", SLoDAPlusConfig, apply_s, None, description="frozen magnitude-pruned W_proj + LoDA+",
               describe=loda.describe, label="S-LoDA+"),
]
