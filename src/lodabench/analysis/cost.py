"""Inference cost of the adapted attention projections (LoDA paper, Appendix A.4): MACs per token
from the method configs, next to measured CPU latency, so the table shows where theory and
wall-clock agree and where not.

MACs (multiply-accumulates) per token per layer of the q/k/v projection W_proj (d_in -> D,
D = d_q + d_k + d_v; GPT-2/BERT: d_q = d_k = d_v = d, D = 3d; LLaMA GQA: D = d + 2 d_kv), with
T the adapted slots (default q, v), d_t a slot's output width, r the adapter rank, p the depth of
LoDA's f1 (p maps r x r), R the R-LoDA rank and f the S-LoDA keep fraction. Derived from the
definitions in methods/ (LoDA §3); the A.4 text itself was not retrievable here, so these are our
derivation, stated so they can be checked:

    dense, and any merged update (LoRA/CondLoRA/DoRA merged):  d_in * D            (GPT-2: 3 d^2)
    LoRA unmerged      d_in*D + sum_t r (d_in + d_t)           (+2rd per adapted square matrix)
    CondLoRA unmerged  as LoRA: A, B depend only on W0 and theta, so they are computed once
                       per layer, not per token (methods/condlora.py recomputes them per
                       forward call: r*d_in*d_t + d_t*d_in*r per call, amortised over tokens)
    LoDA               d_in*D + sum_t (r d_in + p r^2 + r d_t)         (LayerNorm/LeakyReLU:
    LoDA+              d_in*D + sum_t (r d_in + p r^2 + 2 r d_t)        O(r) non-MAC operations)
    R-LoDA(+)          R d_in + R D + [LoDA(+) extra]          (GPT-2: R d + 3 R d = 4 R d)
    S-LoDA(+)          f d_in D + [LoDA(+) extra]              (non-zeros only)

GPT-2 medium (d = 1024), R = 300: 4*300*1024 = 1,228,800 vs 3*1024^2 = 3,145,728 (39 %).
``macs_executed`` is what the code in methods/ actually multiplies: S-LoDA with dense storage
multiplies the zeros (d_in*D); R-LoDA on BERT/RoBERTa/LLaMA keeps one factorised module per
q/k/v, each computing x W_A, so 3 R d_in + R D (the shared x W_A is not reused).

Latency: torch.set_num_threads(1), eval mode, no_grad, ``--warmup`` untimed rounds then
``--repeats`` timed rounds; the median and the spread (min, max, interquartile range) in ms are
reported. All variants are built first and timed round-robin (one call of each per round), so
load from other processes falls on all of them alike (memory: the variants share the frozen
weights, only the projections are copied; lodabench/bench/variants.py). Two measurements per
method and shape (batch x seq): the q/k/v projection of layer 0 alone (the module(s) the method
installs, fed a random (batch, seq, d_in) input), and a whole forward pass (random token ids,
full attention mask). The machine is shared, so compare medians of one run and read the spread
before trusting small differences.

Methods timed (``lodabench.bench.variants.build_variant``: method=<name>'s defaults with r, rank,
keep, storage and dropout 0 overridden): dense; lora merged (merge_method) and
unmerged; loda; r_loda at each R (``--ranks``, default 0.3/0.4/0.5 of min(d_in, D), the
LoDA paper's 300/400/500 on d = 1024 are about that); s_loda at each keep (0.4/0.5/0.6) with
``storage=dense`` and ``storage=sparse_csr``.

Commands (write ``macs.csv``, ``latency.csv`` into --out and print the table):

    python -m lodabench.analysis cost --model minilm-l6 --out results/analysis/cost/minilm-l6
    python -m lodabench.analysis cost --model tiny-gpt2 --shapes 1x32 --repeats 5 --out /tmp/cost-tiny
    python -m lodabench.analysis cost --model gpt2-medium --macs-only --ranks 300 400 500 --out DIR
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from lodabench.analysis import CSV_FLOATS, build_model, format_table
from lodabench.bench.macs import (  # noqa: F401  (re-exported: the MACs formulas were defined here)
    ProjShape, dense_macs, loda_extra, lora_extra, method_macs, proj_shape, r_loda_base, s_loda_base)
from lodabench.bench.variants import Variant, build_variant
from lodabench.errors import ConfigError
from lodabench.io import write_csv

# ----------------------------------------------------------------------------- MACs
# The per-layer formulas live in lodabench/bench/macs.py (bench's cost claims use them too; analysis sits
# above bench, so they are imported from there).


def linear_macs(model: torch.nn.Module) -> int:
    """MACs per token of every Linear / Conv1D of a (plain) model: in * out each."""
    total = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features
        elif type(m).__name__ == "Conv1D":
            total += int(m.weight.shape[0] * m.weight.shape[1])
    return total


# ----------------------------------------------------------------------------- timing


def spread(ts: Sequence[float]) -> dict[str, float]:
    """Median and spread (min, max, interquartile range) of timings in ms."""
    q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
    return {"median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts), "iqr_ms": q[2] - q[0]}


def time_interleaved(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int = 1) -> list[list[float]]:
    """Per function, ``repeats`` timings (ms) taken round-robin (f1, f2, ..., f1, f2, ...) after
    ``warmup`` untimed rounds, so that load from other processes on a shared machine falls on
    every variant alike instead of on whichever happened to run during a busy spell."""
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats}: need at least 1 timed call")
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            out[k].append((time.perf_counter() - t0) * 1e3)
    return out


def time_fn(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median and spread (ms) of ``repeats`` timed calls after ``warmup`` untimed ones."""
    return spread(time_interleaved([fn], repeats, warmup)[0])


def variants(r: int, ranks: Sequence[int], keeps: Sequence[float], storages: Sequence[str]) -> list[Variant]:
    """The methods timed, built by the bench's one variant builder (method=<name>'s defaults plus these
    overrides); dropout 0 because only eval-mode cost is measured."""
    def adapted(label: str, method: str, merged: bool = False, **extra: Any) -> Variant:
        return Variant(label, method, {"r": r, "dropout": 0.0, **extra}, merged)

    out = [Variant("dense", None), adapted("lora merged", "lora", merged=True), adapted("lora", "lora"),
           adapted("loda", "loda")]
    out += [adapted(f"r_loda R={R}", "r_loda", rank=int(R)) for R in ranks]
    out += [adapted(f"s_loda keep={k} {st}", "s_loda", keep=float(k), storage=st) for st in storages for k in keeps]
    return out


def macs_config(v: Variant) -> dict[str, Any]:
    """The config ``method_macs`` reads for a variant (a merged update costs what the dense layer costs)."""
    return {**v.overrides, "name": "lora_merged" if v.merged else (v.method or "dense")}


def projection_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The distinct module(s) computing layer 0's q, k, v (one c_attn, or three Linears)."""
    from lodabench.methods import targets

    mods: list[torch.nn.Module] = []
    for p in targets.projections(model, 0).values():
        if not any(p.module is m for m in mods):
            mods.append(p.module)
    return mods


def parse_shapes(values: Sequence[str]) -> list[tuple[int, int]]:
    out = []
    for v in values:
        try:
            b, t = (int(x) for x in v.lower().split("x"))
        except ValueError as exc:
            raise ConfigError(f"--shapes {v!r}: expected BATCHxSEQ, e.g. 8x512") from exc
        out.append((b, t))
    return out


def run(base: torch.nn.Module, *, family: str, r: int, ranks: Sequence[int], keeps: Sequence[float],
        storages: Sequence[str], shapes: Sequence[tuple[int, int]], repeats: int, warmup: int,
        macs_only: bool = False, forward: bool = True, seed: int = 0) -> tuple[list[dict], list[dict]]:
    torch.set_num_threads(1)
    from lodabench.methods import targets

    s = proj_shape(base)
    n_layers = targets.num_layers(base)
    dense_model_macs = linear_macs(base)
    macs_rows, lat_rows = [], []
    built: list[tuple[Variant, torch.nn.Module]] = []
    for v in variants(r, ranks, keeps, storages):
        theory, executed = method_macs(s, macs_config(v), family)
        macs_rows.append({
            "method": v.label, "macs_per_token_layer": theory, "ratio_to_dense": theory / dense_macs(s),
            "macs_executed": executed, "executed_ratio": executed / dense_macs(s),
            # whole model, Linear/Conv1D only (attention scores and norms excluded)
            "model_linear_macs_per_token": dense_model_macs + n_layers * (theory - dense_macs(s)),
        })
        if macs_only:
            continue
        built.append((v, build_variant(base, v).eval()))
    g = torch.Generator().manual_seed(seed)
    vocab = int(base.config.vocab_size)
    for b, t in shapes if built else []:
        x = torch.randn(b, t, s.d_in, generator=g)
        ids = torch.randint(0, vocab, (b, t), generator=g)
        mask = torch.ones(b, t, dtype=torch.long)
        mods = [projection_modules(m) for _, m in built]
        with torch.no_grad():
            proj = time_interleaved([lambda ms=ms: [m(x) for m in ms] for ms in mods], repeats, warmup)
            fwd = time_interleaved([lambda m=m: m(input_ids=ids, attention_mask=mask) for _, m in built],
                                   repeats, warmup) if forward else None
        for k, (v, _) in enumerate(built):
            row = {"method": v.label, "shape": f"{b}x{t}", **{f"proj_{key}": val for key, val in spread(proj[k]).items()}}
            if fwd is not None:
                row |= {f"forward_{key}": val for key, val in spread(fwd[k]).items()}
            lat_rows.append(row)
    del built
    dense = {r_["shape"]: r_ for r_ in lat_rows if r_["method"] == "dense"}
    for row in lat_rows:
        d = dense[row["shape"]]
        row["proj_speedup"] = d["proj_median_ms"] / row["proj_median_ms"]
        if forward:
            row["forward_speedup"] = d["forward_median_ms"] / row["forward_median_ms"]
    return macs_rows, lat_rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="conf/model/<name>.yaml name (or a yaml path)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--r", type=int, default=4, help="adapter rank r (LoRA/LoDA; paper: 4)")
    p.add_argument("--ranks", type=int, nargs="*", default=None,
                   help="R-LoDA ranks R (default: 0.3/0.4/0.5 of min(d_in, D), rounded)")
    p.add_argument("--keeps", type=float, nargs="*", default=[0.4, 0.5, 0.6], help="S-LoDA keep fractions")
    p.add_argument("--storages", nargs="*", default=["dense", "sparse_csr"], choices=["dense", "sparse_csr"])
    p.add_argument("--shapes", nargs="*", default=["1x128", "8x512"], help="BATCHxSEQ inputs to time")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (all variants once per round)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-forward", action="store_true", help="time the projection only")
    p.add_argument("--macs-only", action="store_true", help="no timing (e.g. gpt2-medium dimensions)")
    p.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    from lodabench.methods import targets
    from lodabench.models.pretrained import read_model_conf

    cfg = read_model_conf(args.model)
    if args.macs_only and cfg.get("source") != "config":
        # Dimensions are all MACs need: build the architecture on the meta device, no weights.
        from transformers import AutoConfig, AutoModel

        from lodabench.models.pretrained import resolve_location

        try:
            hf_cfg = AutoConfig.from_pretrained(resolve_location(cfg["pretrained"]))
        except OSError:
            hf_cfg = None
        if hf_cfg is None:
            base = build_model(cfg, seed=args.seed)
        else:
            with torch.device("meta"):
                base = AutoModel.from_config(hf_cfg)
    else:
        base = build_model(cfg, seed=args.seed)
    s = proj_shape(base)
    ranks = args.ranks or sorted({max(1, round(f * min(s.d_in, s.d_out))) for f in (0.3, 0.4, 0.5)})
    macs_rows, lat_rows = run(base, family=targets.family(base), r=args.r, ranks=ranks, keeps=args.keeps,
                              storages=args.storages, shapes=parse_shapes(args.shapes), repeats=args.repeats,
                              warmup=args.warmup, macs_only=args.macs_only, forward=not args.no_forward,
                              seed=args.seed)
    write_csv(args.out / "macs.csv", macs_rows, float_format=CSV_FLOATS)
    print(f"{cfg.get('name', args.model)}: q/k/v projection {s} ; MACs per token per layer")
    print(format_table(macs_rows, list(macs_rows[0])))
    if lat_rows:
        write_csv(args.out / "latency.csv", lat_rows, float_format=CSV_FLOATS)
        cols = ["method", "shape", "proj_median_ms", "proj_iqr_ms", "proj_speedup"]
        if not args.no_forward:
            cols += ["forward_median_ms", "forward_iqr_ms", "forward_speedup"]
        print(f"latency, 1 thread, median of {args.repeats} after {args.warmup} warm-up (ms)")
        print(format_table(lat_rows, cols))
    print(f"wrote {args.out}")
    return 0
