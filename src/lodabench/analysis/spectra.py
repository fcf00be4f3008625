"""LoDA Fig. 2: how compressible is the fused projection W_proj = [Wq, Wk, Wv] of each layer?

R-LoDA replaces W_proj by its rank-R truncated SVD and S-LoDA by a magnitude-pruned copy (LoDA
paper §3.3), so the questions are (a) what fraction of W_proj's energy ||W||_F^2 the top R
singular values carry, and (b) what fraction the largest-magnitude entries carry:

    (a)  E_svd(R)    = sum_{i<=R} sigma_i^2 / sum_i sigma_i^2            (Eckart-Young: the best
                                                                          rank-R approximation)
    (b)  E_sparse(f) = sum of w^2 over the round(f * numel) largest |w| / ||W||_F^2
                       (the same global threshold over q, k, v that methods/approx.py uses)

1 - E is the relative squared Frobenius error of the approximation, in both cases. W_proj comes
from ``lodabench.methods.targets.fused_projection`` (GPT-2: c_attn's (d, 3d) weight as stored;
BERT/RoBERTa/LLaMA: the three Linear weights side by side, input-major), so every family works,
including LLaMA's GQA (d, d + 2 d_kv). An i.i.d. Gaussian matrix of the same shape is added as a
reference ("gaussian" rows): a layer whose curve lies on it has no structure to exploit.

Commands (offline; each writes ``spectra_svd.csv``, ``spectra_sparsity.csv``, ``summary.csv``,
``spectra.png`` and ``spectra.pdf`` into --out and prints the summary table):

    python -m lodabench.analysis spectra --model minilm-l6 --out results/analysis/spectra/minilm-l6
    python -m lodabench.analysis spectra --model smollm2-135m --out results/analysis/spectra/smollm2-135m
    python -m lodabench.analysis spectra --model tiny-gpt2 --out /tmp/spectra-tiny-gpt2

``summary.csv`` has per layer the R needed for 90/95/99 % energy (also as a fraction of
min(d_in, d_out)) and the energy kept at keep = 0.4 / 0.5 / 0.6 (the S-LoDA settings).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import torch

from lodabench.analysis import CSV_FLOATS, build_model, format_table, save_figure
from lodabench.io import write_csv

log = logging.getLogger(__name__)

ENERGY_LEVELS = (0.90, 0.95, 0.99)
KEEP_FRACTIONS = (0.4, 0.5, 0.6)
SUMMARY_COLUMNS = (
    ["layer", "d_in", "d_out"]
    + [f"R{int(p * 100)}" for p in ENERGY_LEVELS]
    + [f"R{int(p * 100)}_frac" for p in ENERGY_LEVELS]
    + [f"energy_keep{k}" for k in KEEP_FRACTIONS]
)


def energy_curve(w: torch.Tensor) -> torch.Tensor:
    """E_svd(R) for R = 1..min(w.shape): cumulative sigma^2 over total, in float64."""
    s = torch.linalg.svdvals(w.detach().to(torch.float64))
    e = s.square()
    return torch.cumsum(e, 0) / e.sum()


def rank_for_energy(curve: torch.Tensor, level: float) -> int:
    """Smallest R with E_svd(R) >= level (curve[R-1] is E_svd(R))."""
    # A tiny tolerance: the last cumsum entry can be 1 - 1e-16.
    hit = torch.nonzero(curve >= level - 1e-12)
    return int(hit[0]) + 1


def sparsity_energy(w: torch.Tensor, fractions: Sequence[float]) -> torch.Tensor:
    """E_sparse(f) for each f: energy of the round(f * numel) largest-magnitude entries."""
    sq = torch.sort(w.detach().to(torch.float64).flatten().square(), descending=True).values
    cum = torch.cumsum(sq, 0)
    total = cum[-1]
    out = []
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"keep fraction {f} is outside [0, 1]")
        k = int(round(f * sq.numel()))
        out.append(cum[k - 1] / total if k > 0 else torch.zeros((), dtype=torch.float64))
    return torch.stack(out)


def fused_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """W_proj of every layer, input-major (d_in, d_q + d_k + d_v)."""
    from lodabench.methods import targets

    return [targets.fused_projection(model, i).weight().detach() for i in range(targets.num_layers(model))]


def keep_grid(extra: Sequence[float] = KEEP_FRACTIONS, steps: int = 100) -> list[float]:
    grid = {round(i / steps, 6) for i in range(1, steps + 1)} | {float(k) for k in extra}
    return sorted(grid)


def analyse(weights: dict[str, torch.Tensor], keep_fractions: Sequence[float]) -> tuple[list, list, list]:
    """Rows for the three CSVs, one curve per named matrix (layer index or "gaussian")."""
    svd_rows, sparse_rows, summary = [], [], []
    for name, w in weights.items():
        curve = energy_curve(w)
        m = curve.numel()
        svd_rows += [{"layer": name, "R": r + 1, "R_frac": (r + 1) / m, "energy": float(curve[r])} for r in range(m)]
        sp = sparsity_energy(w, keep_fractions)
        sparse_rows += [{"layer": name, "keep": float(f), "energy": float(e)} for f, e in zip(keep_fractions, sp)]
        row = {"layer": name, "d_in": int(w.shape[0]), "d_out": int(w.shape[1])}
        for p in ENERGY_LEVELS:
            r = rank_for_energy(curve, p)
            row[f"R{int(p * 100)}"] = r
            row[f"R{int(p * 100)}_frac"] = r / m
        at = sparsity_energy(w, KEEP_FRACTIONS)
        for k, e in zip(KEEP_FRACTIONS, at):
            row[f"energy_keep{k}"] = float(e)
        summary.append(row)
    return svd_rows, sparse_rows, summary


def plot(svd_rows: list, sparse_rows: list, title: str, stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["layer"] for r in svd_rows))
    layers = [n for n in names if n != "gaussian"]
    cmap = plt.get_cmap("viridis")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for idx, n in enumerate(names):
        is_ref = n == "gaussian"
        style = dict(color="k", ls="--", lw=1.2, label="Gaussian (same shape)") if is_ref else dict(
            color=cmap(layers.index(n) / max(len(layers) - 1, 1)), lw=1.0,
            label=f"layer {n}" if len(layers) <= 12 or n in (layers[0], layers[-1]) else None)
        xs = [r["R"] for r in svd_rows if r["layer"] == n]
        ys = [r["energy"] for r in svd_rows if r["layer"] == n]
        ax1.plot(xs, ys, **style)
        xs = [r["keep"] for r in sparse_rows if r["layer"] == n]
        ys = [r["energy"] for r in sparse_rows if r["layer"] == n]
        ax2.plot(xs, ys, **style)
    ax1.set_xlabel("rank R of the truncated SVD")
    ax1.set_ylabel(r"energy kept $\sum_{i\leq R}\sigma_i^2 / \sum_i\sigma_i^2$")
    ax1.set_title("(a) low rank (R-LoDA)")
    ax2.set_xlabel("fraction of largest-|w| entries kept")
    ax2.set_ylabel(r"energy kept $\|W_{kept}\|_F^2/\|W\|_F^2$")
    ax2.set_title("(b) sparsity (S-LoDA)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.01)
    ax2.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def run(model: torch.nn.Module, out_dir: Path, title: str, *, seed: int = 0, baseline: bool = True) -> list[dict]:
    torch.set_num_threads(1)
    ws = fused_weights(model)
    weights: dict[str, torch.Tensor] = {str(i): w for i, w in enumerate(ws)}
    if baseline:
        g = torch.Generator().manual_seed(seed)
        weights["gaussian"] = torch.randn(ws[0].shape, generator=g, dtype=torch.float64)
    grid = keep_grid()
    svd_rows, sparse_rows, summary = analyse(weights, grid)
    out_dir = Path(out_dir)
    write_csv(out_dir / "spectra_svd.csv", svd_rows, float_format=CSV_FLOATS)
    write_csv(out_dir / "spectra_sparsity.csv", sparse_rows, float_format=CSV_FLOATS)
    write_csv(out_dir / "summary.csv", summary, SUMMARY_COLUMNS, float_format=CSV_FLOATS)
    plot(svd_rows, sparse_rows, title, out_dir / "spectra")
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="conf/model/<name>.yaml name (or a yaml path)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of random-init models and of the Gaussian reference")
    p.add_argument("--no-baseline", action="store_true", help="omit the Gaussian reference curve")


def main(args: argparse.Namespace) -> int:
    from lodabench.models.pretrained import read_model_conf

    cfg = read_model_conf(args.model)
    model = build_model(cfg, seed=args.seed)
    summary = run(model, args.out, f"W_proj = [Wq, Wk, Wv] of {cfg.get('name', args.model)}",
                  seed=args.seed, baseline=not args.no_baseline)
    print(format_table(summary, SUMMARY_COLUMNS))
    print(f"wrote {args.out}/{{spectra_svd,spectra_sparsity,summary}}.csv and spectra.{{png,pdf}}")
    return 0
