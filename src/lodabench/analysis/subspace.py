"""Normalised subspace similarity (LoRA paper §7; CondLoRA eq. 2) between adapters and between
layers' conversion matrices (CondLoRA eqs. 3-4, Fig. 1), with a random Gaussian baseline.

    phi(X, Y, i, j) = || U_X^{i T} U_Y^{j} ||_F^2 / min(i, j)   in [0, 1]

U_X^i are the top-i left singular vectors of X (columns in the same space as Y's). phi = 1 when
one span contains the other, 0 for orthogonal spans; two random i- and j-dim subspaces of R^d
give about max(i, j) / d.

What is compared (A (r, d_in) and B (d_out, r) in nn.Linear orientation, dW = B A; the scaling
alpha/r does not change any span):

* two runs, per layer and slot (CondLoRA Table 3): A by its row space (left singular vectors of
  A^T, in R^{d_in}), B by its column space (R^{d_out}), dW by its column space.
* one run, across layers (CondLoRA Fig. 1): the conversion matrices that map W0 to A and B,
  with W_lin (d_out, d_in) the nn.Linear weight. Two conventions, matching the two orientations
  of ``method.w0`` in ``lodabench.methods.condlora``:

      lodabench (w0=input_major: A = theta_A^T W_lin, B = W_lin theta_B):
          C_A = pinv(W_lin^T) A^T   (d_out, r)      C_B = pinv(W_lin) B   (d_in, r)
      official  (w0=linear, the CondLoRA code: A^T = W_lin theta_A, B = W_lin theta_B; the
                 authors' src/conversion_matrix_analysis.py; square W0 only):
          C_A = pinv(W_lin) A^T                     C_B = pinv(W_lin) B

  The paper writes W0^{-1}; we use the Moore-Penrose pseudo-inverse so non-square W0 (LLaMA
  GQA k/v) work, and it equals the inverse for invertible square W0. ``--convention auto`` (the
  default) uses, for a CondLoRA run, the convention of the run's own ``method.w0``, so C_A, C_B
  are exactly its shared theta_A / theta_B in every layer (phi = 1 across layers, a check of the
  code); for LoRA-family runs it uses ``lodabench``.
* the random baseline: Gaussian matrices of the same shapes, averaged over --random-trials.

Inputs: run directories of ``python -m lodabench`` (``config.yaml`` for the base model and seed,
``checkpoints/epoch-N/trainable.safetensors`` (highest N) or the step checkpoint named by
``checkpoints/latest.json``), or a checkpoint file with --model/--seed. Adapter tensors are
found by name: ``...<layer>....adapters.<slot>.lora_A`` / ``lora_B`` (LoRA, DoRA, LoDA family)
and ``condlora.<slot>.theta_A`` / ``theta_B`` (CondLoRA, evaluated on each layer's W0 in the
run's ``method.w0`` orientation: ``--w0``, else the checkpoint's saved method config, else the
run's config.yaml, else CondLoRAConfig's default; a checkpoint whose saved CondLoRA config has
no ``w0`` predates the option and was ``input_major``).

Commands:

    # two runs (LoRA vs CondLoRA), per layer + average, and each run's cross-layer heat-maps
    python -m lodabench.analysis subspace --run results/runs/.../lora/... \\
        --run-b results/runs/.../condlora/... --out results/analysis/subspace/sst2-minilm
    # a checkpoint without a run folder (tiny GPT-2, random init seeded like the run)
    python -m lodabench.analysis subspace --checkpoint ck.safetensors --model tiny-gpt2 --seed 0 --out DIR

Outputs in --out: ``pairs.csv`` (per layer/slot/kind phi and its random baseline) and
``pairs_summary.csv`` when two runs are given; ``conversion_<label>.csv`` and
``conversion_<label>.{png,pdf}`` (heat-maps, slots x {A, B, random}) for each run.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from lodabench.analysis import CSV_FLOATS, build_model, format_table, save_figure
from lodabench.errors import CheckpointError, ConfigError
from lodabench.io import write_csv

# ----------------------------------------------------------------------------- pure functions


def left_basis(x: torch.Tensor, i: int | None = None) -> torch.Tensor:
    """Top-i left singular vectors of x (m, n) as (m, i), float64; i <= min(m, n)."""
    x = x.detach().to(torch.float64)
    k = min(x.shape)
    i = k if i is None else i
    if not 1 <= i <= k:
        raise ConfigError(f"subspace dimension i={i} must lie in [1, min{tuple(x.shape)}={k}]: a matrix "
                          f"of that shape has only {k} left singular vectors. Fix: lower --i/--j")
    if not torch.any(x != 0):
        raise ConfigError(f"a {tuple(x.shape)} matrix is all zeros, so it spans no subspace (an untrained "
                          "LoRA B is zero at init). Fix: analyse a trained checkpoint")
    u, _, _ = torch.linalg.svd(x, full_matrices=False)
    return u[:, :i]


def phi_from_bases(ux: torch.Tensor, uy: torch.Tensor, i: int, j: int) -> float:
    """phi on precomputed orthonormal bases (columns sorted by singular value)."""
    if ux.shape[0] != uy.shape[0]:
        raise ConfigError(f"subspace similarity needs vectors of one space: {ux.shape[0]} vs {uy.shape[0]} rows")
    return float((ux[:, :i].t() @ uy[:, :j]).square().sum() / min(i, j))


def phi(x: torch.Tensor, y: torch.Tensor, i: int, j: int) -> float:
    """phi(X, Y, i, j) = ||U_X^{i T} U_Y^j||_F^2 / min(i, j) (LoRA eq. in §7, CondLoRA eq. 2)."""
    return phi_from_bases(left_basis(x, i), left_basis(y, j), i, j)


def phi_grid(x: torch.Tensor, y: torch.Tensor, max_i: int, max_j: int) -> torch.Tensor:
    """phi for every i <= max_i, j <= max_j (the LoRA paper's Fig. 3 grids), (max_i, max_j)."""
    ux, uy = left_basis(x, max_i), left_basis(y, max_j)
    overlap = (ux.t() @ uy).square()
    cum = overlap.cumsum(0).cumsum(1)
    ii = torch.arange(1, max_i + 1, dtype=torch.float64)[:, None]
    jj = torch.arange(1, max_j + 1, dtype=torch.float64)[None, :]
    return cum / torch.minimum(ii, jj)


def random_phi(shape_x: Sequence[int], shape_y: Sequence[int], i: int, j: int, *, trials: int = 1,
               generator: torch.Generator | None = None) -> float:
    """Mean phi of independent Gaussian matrices with the given shapes (the baseline)."""
    vals = []
    for _ in range(trials):
        x = torch.randn(tuple(shape_x), generator=generator, dtype=torch.float64)
        y = torch.randn(tuple(shape_y), generator=generator, dtype=torch.float64)
        vals.append(phi(x, y, i, j))
    return sum(vals) / len(vals)


CONVENTION_OF_W0 = {"linear": "official", "input_major": "lodabench"}


def conversion_matrices(w_lin: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                        convention: str = "lodabench") -> tuple[torch.Tensor, torch.Tensor]:
    """(C_A, C_B) mapping W0 to A and B (module docstring); pseudo-inverse in float64."""
    w = w_lin.detach().to(torch.float64)
    a, b = a.detach().to(torch.float64), b.detach().to(torch.float64)
    if convention == "lodabench":
        return torch.linalg.pinv(w.t()) @ a.t(), torch.linalg.pinv(w) @ b
    if convention == "official":
        if w.shape[0] != w.shape[1]:
            raise ConfigError(f"--convention official needs a square W0 (the CondLoRA script inverts it), got "
                              f"{tuple(w.shape)}. Fix: use --convention lodabench")
        pinv = torch.linalg.pinv(w)
        return pinv @ a.t(), pinv @ b
    raise ConfigError(f"--convention {convention!r} is not one of lodabench, official")


def layer_similarity(mats: Sequence[torch.Tensor], i: int, j: int) -> torch.Tensor:
    """(L, L) matrix of phi(mats[l], mats[m], i, j) (CondLoRA Fig. 1)."""
    bases = [left_basis(m, max(i, j)) for m in mats]
    n = len(mats)
    out = torch.empty(n, n, dtype=torch.float64)
    for p in range(n):
        for q in range(n):
            out[p, q] = phi_from_bases(bases[p], bases[q], i, j)
    return out


# ----------------------------------------------------------------------------- adapters of a run


@dataclass
class AdapterPair:
    """A (r, d_in), B (d_out, r) of one layer and slot; w0 (d_out, d_in) when the base is known;
    orientation: the CondLoRA ``method.w0`` the pair was rebuilt with (None for stored A, B)."""

    a: torch.Tensor
    b: torch.Tensor
    w0: torch.Tensor | None = None
    orientation: str | None = None


_LAYER_RE = re.compile(r"\.(?:h|layer|layers)\.(\d+)\.")
_ADAPTER_RE = re.compile(r"\.adapters\.([qkv])\.(lora_A|lora_B)$")
_COND_RE = re.compile(r"^condlora\.([qkv])\.(theta_A|theta_B)$")


def adapters_from_state_dict(sd: Mapping[str, torch.Tensor], base: torch.nn.Module | None = None,
                             w0: str | None = None) -> dict[tuple[int, str], AdapterPair]:
    """{(layer, slot): AdapterPair} from a trainable state dict (names as in methods/lora.py,
    methods/condlora.py); CondLoRA's theta are turned into each layer's A, B using ``base`` and
    the run's ``method.w0`` orientation (default: CondLoRAConfig's)."""
    from lodabench.methods import condlora, targets

    w0 = w0 or condlora.CondLoRAConfig.w0

    found: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    theta: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in sd.items():
        m = _ADAPTER_RE.search(key)
        if m:
            layer = _LAYER_RE.search(key)
            if layer is None:
                raise CheckpointError(f"tensor {key!r}: cannot tell its layer index (expected '.h.N.', "
                                      "'.layer.N.' or '.layers.N.' in the name)")
            found.setdefault((int(layer.group(1)), m.group(1)), {})[m.group(2)] = t
            continue
        m = _COND_RE.match(key)
        if m:
            theta.setdefault(m.group(1), {})[m.group(2)] = t
    out: dict[tuple[int, str], AdapterPair] = {}
    for k, ab in found.items():
        if set(ab) != {"lora_A", "lora_B"}:
            raise CheckpointError(f"layer {k[0]} slot {k[1]}: found {sorted(ab)}, need both lora_A and lora_B")
        w0 = targets.projections(base, k[0])[k[1]].weight().detach() if base is not None else None
        out[k] = AdapterPair(ab["lora_A"], ab["lora_B"], w0)
    if theta:
        if base is None:
            raise CheckpointError("the checkpoint holds CondLoRA theta_A/theta_B: the base model is needed to "
                                  "turn them into A, B. Fix: pass --run (with config.yaml) or --model")
        for slot, th in theta.items():
            for layer in range(targets.num_layers(base)):
                w_lin = targets.projections(base, layer)[slot].weight().detach()
                a, b = condlora.low_rank_pair(w_lin, th["theta_A"], th["theta_B"], w0)
                out[(layer, slot)] = AdapterPair(a, b, w_lin, w0)
    if not out:
        raise CheckpointError(f"no adapter tensors (lora_A/lora_B or condlora theta_A/theta_B) among "
                              f"{len(sd)} tensors (e.g. {next(iter(sd), None)!r}): this analysis needs a "
                              "LoRA-family or CondLoRA checkpoint")
    return dict(sorted(out.items()))


def find_checkpoint(run_dir: Path) -> Path:
    """Latest epoch checkpoint of a run, else the step checkpoint named by latest.json."""
    ck = Path(run_dir) / "checkpoints"
    epochs = sorted(ck.glob("epoch-*/trainable.safetensors"), key=lambda p: int(p.parent.name.split("-")[1]))
    if epochs:
        return epochs[-1]
    pointer = ck / "latest.json"
    if pointer.is_file():
        from lodabench.io import read_json

        path = ck / read_json(pointer)["dir"] / "trainable.safetensors"
        if path.is_file():
            return path
    steps = sorted(ck.glob("step-*/trainable.safetensors"))
    if steps:
        return steps[-1]
    raise CheckpointError(f"{run_dir}: no checkpoints/epoch-N/trainable.safetensors nor step checkpoint. "
                          "Fix: point --run at a finished run folder, or pass --checkpoint FILE --model NAME")


def _head_labels(sd: Mapping[str, torch.Tensor]) -> int | None:
    for k in ("classifier.out_proj.weight", "classifier.weight", "score.weight"):
        if k in sd:
            return int(sd[k].shape[0])
    return None


def _saved_w0(checkpoint: Path) -> str | None:
    """``w0`` of the CondLoRA config saved in the checkpoint's metadata (methods/checkpoint.py);
    "input_major" when that config predates the option; None without a CondLoRA config."""
    import json

    from lodabench.methods.checkpoint import META_CONFIG, read_metadata

    try:
        saved = json.loads(read_metadata(checkpoint).get(META_CONFIG) or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("name") != "condlora":
        return None
    return saved.get("w0", "input_major")


def load_run(run: Path | None, checkpoint: Path | None = None, model: str | None = None,
             seed: int | None = None, w0: str | None = None) -> tuple[dict[tuple[int, str], AdapterPair], str]:
    """Adapters of a run folder (or a checkpoint file + model name); returns (adapters, label).
    CondLoRA's orientation: ``w0``, else the checkpoint's saved config, else config.yaml's."""
    from safetensors.torch import load_file

    from lodabench.models.pretrained import read_model_conf

    model_cfg: dict[str, Any] | None = None
    method_name = None
    run_w0 = None
    if run is not None:
        run = Path(run)
        checkpoint = checkpoint or find_checkpoint(run)
        cfg_path = run / "config.yaml"
        if cfg_path.is_file() and model is None:
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=True)  # run.py writes it resolved
            model_cfg = cfg.get("model")  # type: ignore[union-attr]
            method_name = (cfg.get("method") or {}).get("name")  # type: ignore[union-attr]
            run_w0 = (cfg.get("method") or {}).get("w0")  # type: ignore[union-attr]
            seed = int(cfg.get("seed", 0)) if seed is None else seed  # type: ignore[union-attr]
    if checkpoint is None:
        raise ConfigError("subspace: give --run RUN_DIR or --checkpoint FILE")
    if model is not None:
        model_cfg = read_model_conf(model)
    sd = load_file(str(checkpoint))
    base = None
    if model_cfg is not None:
        labels = _head_labels(sd)
        kind = "sequence_classification" if labels is not None else "causal_lm"
        base = build_model(model_cfg, seed=seed or 0, kind=kind, num_labels=labels)
    if run is None:
        label = Path(checkpoint).stem
    else:  # results/runs/<data>/<model>/<method>/<overrides>/seed<k> -> <method>-<overrides>-seed<k>
        parts = [method_name] if method_name else []
        overrides = run.parent.name
        if len(overrides) > 40 and "-" in overrides:  # run.py's slug ends in a short hash: keep that
            overrides = overrides.rsplit("-", 1)[1]
        if overrides not in parts:
            parts.append(overrides)
        label = "-".join(parts + [run.name])
    w0 = w0 or _saved_w0(checkpoint) or run_w0
    return adapters_from_state_dict(sd, base, w0), re.sub(r"[^A-Za-z0-9_.=-]", "_", label)


# ----------------------------------------------------------------------------- the analyses


def compare_runs(x: Mapping[tuple[int, str], AdapterPair], y: Mapping[tuple[int, str], AdapterPair],
                 i: int | None, j: int | None, trials: int, seed: int) -> list[dict]:
    """Per (layer, slot): phi of A (row spaces), B and dW (column spaces), with random baselines."""
    common = [k for k in x if k in y]
    if not common:
        raise ConfigError(f"the two runs share no adapted (layer, slot): {sorted(x)[:4]} vs {sorted(y)[:4]}")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for layer, slot in common:
        p, q = x[(layer, slot)], y[(layer, slot)]
        ii = i or min(p.a.shape[0], q.a.shape[0])
        jj = j or ii
        mats = {"A": (p.a.t(), q.a.t()), "B": (p.b, q.b), "dW": (p.b @ p.a, q.b @ q.a)}
        for kind, (mx, my) in mats.items():
            rows.append({"layer": layer, "slot": slot, "kind": kind, "i": ii, "j": jj,
                         "phi": phi(mx, my, ii, jj),
                         "phi_random": random_phi(mx.shape, my.shape, ii, jj, trials=trials, generator=g)})
    return rows


def summarise(rows: Sequence[dict]) -> list[dict]:
    out = []
    for slot in sorted({r["slot"] for r in rows}) + ["all"]:
        for kind in ("A", "B", "dW"):
            sel = [r for r in rows if r["kind"] == kind and (slot == "all" or r["slot"] == slot)]
            if sel:
                out.append({"slot": slot, "kind": kind, "n": len(sel),
                            "phi_mean": sum(r["phi"] for r in sel) / len(sel),
                            "phi_random_mean": sum(r["phi_random"] for r in sel) / len(sel)})
    return out


def _convention_for(pair: AdapterPair, convention: str) -> str:
    """``auto``: the convention of the pair's CondLoRA orientation, ``lodabench`` for stored A, B."""
    if convention != "auto":
        return convention
    return CONVENTION_OF_W0.get(pair.orientation or "", "lodabench")


def conversion_analysis(adapters: Mapping[tuple[int, str], AdapterPair], i: int | None, j: int | None,
                        convention: str, trials: int, seed: int) -> tuple[list[dict], dict]:
    """Cross-layer phi of C_A and C_B per slot, and of Gaussian matrices of the same shapes."""
    g = torch.Generator().manual_seed(seed)
    rows, heat = [], {}
    for slot in sorted({s for _, s in adapters}):
        pairs = [(l, p) for (l, s), p in adapters.items() if s == slot]
        if any(p.w0 is None for _, p in pairs):
            raise ConfigError("conversion matrices need W0: pass --run with config.yaml or --model")
        conv = [conversion_matrices(p.w0, p.a, p.b, _convention_for(p, convention)) for _, p in pairs]
        layers = [l for l, _ in pairs]
        for kind, mats in (("A", [c[0] for c in conv]), ("B", [c[1] for c in conv])):
            ii = i or mats[0].shape[1]
            jj = j or ii
            sim = layer_similarity(mats, ii, jj)
            rsim = sum(layer_similarity([torch.randn(tuple(m.shape), generator=g, dtype=torch.float64)
                                         for m in mats], ii, jj) for _ in range(max(trials, 1))) / max(trials, 1)
            heat[(slot, kind)] = (layers, sim, rsim)
            for p_, la in enumerate(layers):
                for q_, lb in enumerate(layers):
                    rows.append({"slot": slot, "kind": kind, "layer_a": la, "layer_b": lb, "i": ii, "j": jj,
                                 "phi": float(sim[p_, q_]), "phi_random": float(rsim[p_, q_])})
    return rows, heat


def plot_heatmaps(heat: dict, title: str, stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slots = sorted({s for s, _ in heat})
    fig, axes = plt.subplots(len(slots), 3, figsize=(11, 3.4 * len(slots)), squeeze=False)
    for r, slot in enumerate(slots):
        panels = [(f"{slot}: C_A", heat[(slot, "A")][1]), (f"{slot}: C_B", heat[(slot, "B")][1]),
                  (f"{slot}: Gaussian (C_A shape)", heat[(slot, "A")][2])]
        layers = heat[(slot, "A")][0]
        for c, (name, mat) in enumerate(panels):
            ax = axes[r][c]
            im = ax.imshow(mat.numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_title(name, fontsize=9)
            ax.set_xticks(range(len(layers)), layers, fontsize=6)
            ax.set_yticks(range(len(layers)), layers, fontsize=6)
            if len(layers) <= 12:
                for p_ in range(len(layers)):
                    for q_ in range(len(layers)):
                        ax.text(q_, p_, f"{float(mat[p_, q_]):.2f}", ha="center", va="center", fontsize=5,
                                color="w" if mat[p_, q_] < 0.5 else "k")
        fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
    fig.suptitle(title)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, help="run folder (config.yaml + checkpoints/)")
    p.add_argument("--run-b", type=Path, help="second run folder: per-layer phi between the two runs")
    p.add_argument("--checkpoint", type=Path, help="trainable.safetensors instead of --run's latest")
    p.add_argument("--checkpoint-b", type=Path, help="second checkpoint file (with --model)")
    p.add_argument("--model", help="conf/model/<name> of the base (overrides the run's config.yaml)")
    p.add_argument("--seed", type=int, default=None, help="seed of a random-init base (default: the run's)")
    p.add_argument("--i", type=int, default=None, help="subspace dim of X (default: the rank r)")
    p.add_argument("--j", type=int, default=None, help="subspace dim of Y (default: i)")
    p.add_argument("--convention", default="auto", choices=("auto", "lodabench", "official"),
                   help="conversion-matrix orientation (module docstring); auto: a CondLoRA run's own method.w0")
    p.add_argument("--w0", default=None, choices=("linear", "input_major"),
                   help="CondLoRA orientation used to rebuild A, B (default: the checkpoint's / run's method.w0)")
    p.add_argument("--random-trials", type=int, default=5, help="Gaussian draws averaged for the baseline")
    p.add_argument("--out", required=True, type=Path)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    if args.run is None and args.checkpoint is None:
        raise ConfigError("subspace: give --run RUN_DIR (or --checkpoint FILE --model NAME)")
    x, lx = load_run(args.run, args.checkpoint, args.model, args.seed, args.w0)
    runs = [(x, lx)]
    if args.run_b is not None or args.checkpoint_b is not None:
        y, ly = load_run(args.run_b, args.checkpoint_b, args.model, args.seed, args.w0)
        if ly == lx:
            lx, ly = f"{lx}-a", f"{ly}-b"
        runs = [(x, lx), (y, ly)]
        rows = compare_runs(x, y, args.i, args.j, args.random_trials, seed=0)
        write_csv(args.out / "pairs.csv", rows, float_format=CSV_FLOATS)
        summary = summarise(rows)
        write_csv(args.out / "pairs_summary.csv", summary, float_format=CSV_FLOATS)
        print(f"phi({lx}, {ly}) per layer: {args.out / 'pairs.csv'}")
        print(format_table(summary, ["slot", "kind", "n", "phi_mean", "phi_random_mean"]))
    for adapters, label in runs:
        if any(p.w0 is None for p in adapters.values()):
            print(f"{label}: base model unknown, conversion matrices skipped (pass --model)")
            continue
        rows, heat = conversion_analysis(adapters, args.i, args.j, args.convention, args.random_trials, seed=1)
        write_csv(args.out / f"conversion_{label}.csv", rows, float_format=CSV_FLOATS)
        plot_heatmaps(heat, f"phi between layers' conversion matrices ({label}, {args.convention})",
                      args.out / f"conversion_{label}")
        off = [r for r in rows if r["layer_a"] != r["layer_b"]]
        for slot in sorted({r["slot"] for r in off}):
            for kind in ("A", "B"):
                sel = [r for r in off if r["slot"] == slot and r["kind"] == kind]
                if sel:
                    print(f"{label} {slot} C_{kind}: mean off-diagonal phi {sum(r['phi'] for r in sel) / len(sel):.3f}"
                          f" (Gaussian {sum(r['phi_random'] for r in sel) / len(sel):.3f})")
    print(f"wrote {args.out}")
    return 0
