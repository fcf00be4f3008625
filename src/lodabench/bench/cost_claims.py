"""Cost claims of the papers, measured (issue #19): ``python -m lodabench.bench cost-claims``.

Two claims, each timed round-robin in ONE process (timing.py), medians and paired ratios:

* ``condlora`` -- CondLoRA paper Table 4 (RoBERTa-base, batch 16, one A100): training speed
  LoRA 39.652 vs CondLoRA 40.303 examples/s, i.e. "CondLoRA is slightly faster than LoRA" although
  it rebuilds A and B from W0 in every iteration. We time a full training step (forward, loss,
  backward, AdamW) of RoBERTa-base built from config (random init: cost does not depend on the
  values) with the paper's Table 1 settings (r 8, alpha 8, query and value of all 12 layers,
  batch 16). Sequence length 128, not the paper's "Max Seq. Len. 512": that is a cap, their
  batches are padded to the longest GLUE example in the batch, which the paper does not report;
  128 is documented here and in the record. Timed: the steps of ``lora`` and ``condlora`` (A and
  B from one matmul, condlora.rebuild_pair), and the rebuild alone (every layer's A, B plus their
  backward) fused and as before issue #19 (two matmuls, ``low_rank_pair``), to show its share
  of the step and what the fusion saves. ``--reference-step`` also times the whole step of the
  two-matmul variant ``condlora_reference`` (+50 % run time; at batch 16 the difference is the
  rebuild share times its saving, far below this machine's noise).
* ``s_loda`` -- LoDA paper App. A.4: "the S-LoDA(+) fine-tuned model is computationally more
  efficient than the pre-trained model" (argued in MACs). GPT-2 medium from config, inference
  (eval, inference_mode) at 1 x 128: the base model vs S-LoDA at each keep with
  ``method.storage=dense`` (zeros multiplied) and ``sparse_csr`` (torch CSR kernel); whole
  forward and layer 0's q/k/v projection alone (with and without the LoDA adapter), next to the
  MACs per token (analysis/cost.py). ``semi24`` (2:4, CUDA sm80+) is timed where available,
  otherwise the record says why not.

The machine is 2 CPU cores shared with other jobs: only ratios within one run are meaningful,
and the record says so. The paper measured on GPUs; a CPU verdict is about this CPU.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from lodabench.bench.timing import Stats, paired_ratio, round_robin
from lodabench.bench.variants import Variant, build_base, build_variant
from lodabench.errors import ConfigError
from lodabench.io import atomic_write_json, atomic_write_text
from lodabench.machine import machine_info
from lodabench.paths import REPO_ROOT, shared_dir

PARTS = ("condlora", "s_loda")
REBUILD_ROUNDS = 30
# CondLoRA paper Table 1 (r, alpha; query/value of layers 1-12 = method=condlora's default targets).
CONDLORA_PAPER_HP = {"r": 8, "alpha": 8.0}
NOISE_NOTE = ("2 CPU cores shared with other jobs: variants are timed round-robin (each round calls every "
              "variant once, order rotated), ratios are paired within a round and the median over rounds "
              "is reported with its IQR; absolute times are not comparable across records. On CPU the "
              "tables and verdicts use the process CPU time of each call (time.process_time, one torch "
              "thread), which leaves out the time spent waiting for a core; the wall-clock ratios are in "
              "the JSON (``wall_clock``) and the Wall column.")
CLOCK_NAMES = {"cpu": "process CPU time", "wall": "wall clock"}


def verdict(ratio: Stats, below_is: str, above_is: str) -> str:
    """Read a paired time ratio against 1.0: clear when the whole IQR lies on one side."""
    if ratio.q3 < 1.0:
        return below_is
    if ratio.q1 > 1.0:
        return above_is
    side = below_is if ratio.median <= 1.0 else above_is
    return f"within noise (IQR {ratio.q1:.3f}-{ratio.q3:.3f} spans 1.0; median says: {side})"


def clocked(fns: dict[str, Callable[[], object]], warmup: int, reps: int, device: str,
            on_round: Callable[[int], None] | None = None) -> dict[str, dict[str, list[float]]]:
    """Round-robin timings on both clocks: ``wall`` (perf_counter) and ``cpu`` (process CPU time)."""
    cpu: dict[str, list[float]] = {}
    wall = round_robin(fns, warmup, reps, device, on_round=on_round, cpu_times=cpu)
    return {"wall": wall, "cpu": {k: cpu[k] for k in fns}}  # the variants' order, not the last rotation's


def basis_clock(device: str) -> str:
    """The clock the verdicts read: process CPU time on a (shared) CPU, wall time on CUDA (the
    host thread's CPU time does not count GPU work)."""
    return "cpu" if device == "cpu" else "wall"


# ----------------------------------------------------------------------------- CondLoRA


def paper_table4() -> dict[str, Any] | None:
    """The published rows from ../shared/paper/condlora_table4_speed.csv (None when absent)."""
    shared = shared_dir()
    path = None if shared is None else shared / "paper" / "condlora_table4_speed.csv"
    if path is None or not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        rows = {r["method"]: float(r["value"]) for r in csv.DictReader(fh) if r["metric"] == "train_examples_per_s"}
    return {"source": "../shared/paper/condlora_table4_speed.csv (CondLoRA paper Table 4, one A100)",
            "examples_per_s": rows, "time_ratio_condlora_to_lora": round(rows["lora"] / rows["condlora"], 4)}


def rebuild_fn(model: nn.Module) -> Callable[[], None]:
    """Every layer's A, B (as the forward computes them) and their backward, nothing else."""
    from lodabench.methods.delta import AdaptedProjection

    pairs = [(m, n) for m in model.modules() if isinstance(m, AdaptedProjection) for n in m.adapters]

    def rebuild() -> None:
        total = sum(m.adapters[n].matrices(m.slice_weight(n).detach())[k].sum() for m, n in pairs for k in (0, 1))
        total.backward()
        model.zero_grad(set_to_none=True)
    return rebuild


def condlora_models(base: nn.Module, hp: dict[str, Any], device: str) -> dict[str, nn.Module]:
    from lodabench.methods.condlora import CondLoRAAdapter

    models = {k: build_variant(base, Variant(k, m, dict(hp)), device).train()
              for k, m in (("lora", "lora"), ("condlora", "condlora"), ("condlora_reference", "condlora"))}
    for m in models["condlora_reference"].modules():
        if isinstance(m, CondLoRAAdapter):
            m.fused_rebuild = False
    return models


def run_condlora(shapes: list[tuple[int, int]], warmup: int, reps: int, device: str, model_name: str,
                 log: Callable[[str], None], reference_step: bool = False) -> dict[str, Any]:
    """The rebuild alone (fused vs reference, REBUILD_ROUNDS rounds: it is cheap), then the
    training steps at each shape."""
    from lodabench.bench.train import make_batch, make_optimizer, step_fn

    base = build_base(model_name, device=device)
    models = condlora_models(base, CONDLORA_PAPER_HP, device)
    clock = basis_clock(device)
    rebuild = clocked({k: rebuild_fn(models[m]) for k, m in (("fused", "condlora"), ("reference", "condlora_reference"))},
                      warmup, max(reps, REBUILD_ROUNDS), device)[clock]
    out: dict[str, Any] = {
        "model": model_name, "method_overrides": CONDLORA_PAPER_HP, "paper": paper_table4(), "clock": clock,
        "claim": "CondLoRA trains at least as fast as LoRA (Table 4: 40.303 vs 39.652 examples/s)",
        "seq_len_note": ("paper: batch 16, Max Seq. Len. 512 (a cap; the padded lengths are not reported); here "
                         + ", ".join(f"{b}x{t}" for b, t in shapes)),
        "rebuild_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in rebuild.items()},
        "rebuild_fused_vs_reference": paired_ratio(rebuild, "fused", "reference").as_dict(1, 4), "shapes": {}}
    stepped = [k for k in models if reference_step or k != "condlora_reference"]
    for batch, seq in shapes:
        b = make_batch(base, batch, seq, device)
        fns = {k: step_fn(models[k], "roberta", b, make_optimizer(models[k])) for k in stepped}
        times = clocked(fns, warmup, reps, device,
                        on_round=lambda r: log(f"[condlora] {model_name} {batch}x{seq} round {r + 1}/{warmup + reps}"))
        out["shapes"][f"{batch}x{seq}"] = condlora_shape_result(times[clock], batch, Stats.of(rebuild["fused"]).median)
        out["shapes"][f"{batch}x{seq}"]["wall_clock"] = {
            "step_ms": {k: Stats.of(t).as_dict(1e3, 1) for k, t in times["wall"].items()},
            "ratio_to_lora": {k: paired_ratio(times["wall"], k, "lora").as_dict(1, 4) for k in times["wall"]}}
    return out


def condlora_shape_result(times: dict[str, list[float]], batch: int, rebuild_s: float) -> dict[str, Any]:
    ratio = paired_ratio(times, "condlora", "lora")
    return {
        "step_ms": {k: Stats.of(t).as_dict(1e3, 1) for k, t in times.items()},
        "examples_per_s": {k: round(batch / Stats.of(t).median, 3) for k, t in times.items()},
        "ratio_to_lora": {k: paired_ratio(times, k, "lora").as_dict(1, 4) for k in times},
        "fused_vs_reference_step": (paired_ratio(times, "condlora", "condlora_reference").as_dict(1, 4)
                                    if "condlora_reference" in times else None),
        "rebuild_share_of_condlora_step": round(rebuild_s / Stats.of(times["condlora"]).median, 4),
        "verdict": verdict(ratio, "holds: CondLoRA not slower", "does not hold: CondLoRA slower"),
    }


# ----------------------------------------------------------------------------- S-LoDA


def s_loda_variants(keeps: tuple[float, ...], storages: tuple[str, ...]) -> list[Variant]:
    return [Variant("base", None)] + [Variant(f"s_loda_keep{k}_{st}", "s_loda", {"keep": k, "storage": st, "dropout": 0.0})
                                      for k in keeps for st in storages]


def s_loda_macs(base: nn.Module, variants: list[Variant]) -> dict[str, dict[str, float]]:
    """MACs per token per layer of the q/k/v projection (analysis/cost.py formulas)."""
    from lodabench.bench.macs import dense_macs, method_macs, proj_shape
    from lodabench.bench.variants import method_cfg

    s = proj_shape(base)
    out = {"base": {"theory": dense_macs(s), "executed": dense_macs(s)}}
    for v in variants[1:]:
        theory, executed = method_macs(s, method_cfg(v.method, **v.overrides))
        out[v.label] = {"theory": theory, "executed": executed}
    for d in out.values():
        d["theory_ratio_to_base"] = round(d["theory"] / dense_macs(s), 4)
        d["executed_ratio_to_base"] = round(d["executed"] / dense_macs(s), 4)
    return out


def projection_fns(models: dict[str, nn.Module], x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """Layer 0's q/k/v module as the method left it, and its frozen part alone (``_frozen``)."""
    from lodabench.methods import targets
    from lodabench.methods.delta import AdaptedProjection

    fns: dict[str, Callable[[], object]] = {}
    for k, m in models.items():
        mod = targets.projections(m, 0)["q"].module
        fns[k] = lambda mod=mod: mod(x)
        if isinstance(mod, AdaptedProjection):
            fns[f"{k}_frozen"] = lambda mod=mod: mod.base_layer(x)
    return fns


def run_s_loda(shape: tuple[int, int], keeps: tuple[float, ...], warmup: int, reps: int, device: str,
               model_name: str, log: Callable[[str], None]) -> dict[str, Any]:
    from lodabench.methods.approx import semi24_unsupported_reason

    batch, seq = shape
    base = build_base(model_name, device=device).eval()
    semi24_why = semi24_unsupported_reason()
    storages = ("dense", "sparse_csr") + (("semi24",) if semi24_why is None and 0.5 in keeps else ())
    variants = [v for v in s_loda_variants(keeps, storages) if not (v.overrides.get("storage") == "semi24" and v.overrides["keep"] != 0.5)]
    models = {v.label: (base if v.method is None else build_variant(base, v, device)).eval() for v in variants}
    log(f"[s_loda] {model_name}: built {len(models)} variants")
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, int(base.config.vocab_size), (batch, seq), generator=g).to(device)
    mask = torch.ones_like(ids)
    x = torch.randn(batch, seq, int(base.config.hidden_size), generator=g).to(device)
    clock = basis_clock(device)
    with torch.inference_mode():
        fwd = clocked({k: (lambda m=m: m(input_ids=ids, attention_mask=mask)) for k, m in models.items()},
                      warmup, reps, device, on_round=lambda r: log(f"[s_loda] forward round {r + 1}/{warmup + reps}"))
        proj = clocked(projection_fns(models, x), warmup, max(reps, 20), device)
    out = s_loda_result(fwd[clock], proj[clock], s_loda_macs(base, variants), model_name, shape, keeps, semi24_why)
    out["clock"] = clock
    out["wall_clock"] = {"forward_ratio_to_base": {k: paired_ratio(fwd["wall"], k, "base").as_dict(1, 4) for k in fwd["wall"]},
                         "projection_speedup_vs_base": {k: paired_ratio(proj["wall"], "base", k).as_dict(1, 3) for k in proj["wall"]}}
    return out


def s_loda_result(fwd: dict[str, list[float]], proj: dict[str, list[float]], macs: dict[str, Any], model_name: str,
                  shape: tuple[int, int], keeps: tuple[float, ...], semi24_why: str | None) -> dict[str, Any]:
    fwd_ratio = {k: paired_ratio(fwd, k, "base") for k in fwd}
    verdicts = {k: {"forward": verdict(r, "cheaper than the base model", "not cheaper than the base model"),
                    "qkv_projection": verdict(paired_ratio(proj, k, "base"), "cheaper than the dense projection",
                                              "not cheaper than the dense projection")}
                for k, r in fwd_ratio.items() if k != "base"}
    csr_vs_dense = {str(k): {"forward": paired_ratio(fwd, f"s_loda_keep{k}_dense", f"s_loda_keep{k}_sparse_csr").as_dict(1, 3),
                             "projection_frozen": paired_ratio(proj, f"s_loda_keep{k}_dense_frozen", f"s_loda_keep{k}_sparse_csr_frozen").as_dict(1, 3)}
                    for k in keeps}
    return {
        "model": model_name, "shape": f"{shape[0]}x{shape[1]}", "keeps": list(keeps),
        "macs_per_token_layer": macs,
        "forward_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in fwd.items()},
        "forward_ratio_to_base": {k: r.as_dict(1, 4) for k, r in fwd_ratio.items()},
        "projection_ms": {k: Stats.of(t).as_dict(1e3, 3) for k, t in proj.items()},
        "projection_speedup_vs_base": {k: paired_ratio(proj, "base", k).as_dict(1, 3) for k in proj},
        "csr_speedup_vs_dense": csr_vs_dense,
        "semi24": {"timed": semi24_why is None and 0.5 in keeps, "why_not": semi24_why},
        "claim": "LoDA App. A.4: the S-LoDA(+) fine-tuned model is computationally more efficient than the pre-trained model",
        "verdict_macs": "holds in MACs for every keep < 1 (fewer multiply-accumulates than the dense projection)",
        "verdict_measured": verdicts,
    }


# ----------------------------------------------------------------------------- record


STEP_ORDER = ["lora", "condlora", "condlora_reference"]


def _ordered(d: dict[str, Any], order: list[str]) -> list[tuple[str, Any]]:
    return [(k, d[k]) for k in order if k in d]


def _fmt(d: dict[str, Any], k: str = "median", digits: int = 3) -> str:
    return f"{d[k]:.{digits}f} [{d['q1']:.{digits}f}-{d['q3']:.{digits}f}]"


def markdown_condlora(c: dict[str, Any]) -> list[str]:
    paper, hp = c["paper"], c["method_overrides"]
    lines = [f"## CondLoRA training speed (CondLoRA paper Table 4) -- {c['model']}, r={hp['r']}, alpha={hp['alpha']}", "",
             f"Claim: {c['claim']}. Shapes: {c['seq_len_note']}.", ""]
    if paper:
        lines += [f"Paper (one A100): {paper['examples_per_s']} examples/s, time ratio condlora/lora "
                  f"{paper['time_ratio_condlora_to_lora']}.", ""]
    lines += [f"Rebuild of every layer's A, B (+ backward), per step: fused {_fmt(c['rebuild_ms']['fused'], digits=2)} ms, "
              f"before issue #19 (two matmuls) {_fmt(c['rebuild_ms']['reference'], digits=2)} ms; "
              f"fused / before {_fmt(c['rebuild_fused_vs_reference'])} (paired).", ""]
    for shape, r in c["shapes"].items():
        lines += [f"### {shape} ({CLOCK_NAMES[c['clock']]})", "",
                  "| variant | step ms, median [IQR] | examples/s | time / lora, paired [IQR] | Wall: time / lora [IQR] |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k} | {_fmt(st, digits=1)} | {r['examples_per_s'][k]} | {_fmt(r['ratio_to_lora'][k])} | "
                  f"{_fmt(r['wall_clock']['ratio_to_lora'][k])} |" for k, st in _ordered(r["step_ms"], STEP_ORDER)]
        lines += ["", f"The fused rebuild is {100 * r['rebuild_share_of_condlora_step']:.2f} % of a CondLoRA step."
                  + (f" Whole step fused / before: {_fmt(r['fused_vs_reference_step'])}." if r["fused_vs_reference_step"] else ""),
                  "", f"**Verdict on this CPU at {shape}: {r['verdict']}.**", ""]
    return lines


def markdown_s_loda(s: dict[str, Any]) -> list[str]:
    lines = [f"## S-LoDA inference cost (LoDA paper App. A.4) -- {s['model']}, {s['shape']} ({CLOCK_NAMES[s['clock']]})", "",
             f"Claim: {s['claim']}. MACs per token per layer of the q/k/v projection with the LoDA adapter "
             "(analysis/cost.py): theory counts non-zeros only, executed is what the storage multiplies.", "",
             "| variant | MACs theory / base | MACs executed / base | forward ms | forward / base [IQR] | q/k/v projection speed-up vs base [IQR] | frozen part alone speed-up vs base | Wall: projection speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for k, f in _ordered(s["forward_ms"], list(s["macs_per_token_layer"])):
        m = s["macs_per_token_layer"][k]
        frozen = s["projection_speedup_vs_base"].get(f"{k}_frozen")
        lines.append(f"| {k} | {m['theory_ratio_to_base']:.3f} | {m['executed_ratio_to_base']:.3f} | {f['median']:.1f} | "
                     f"{_fmt(s['forward_ratio_to_base'][k])} | {_fmt(s['projection_speedup_vs_base'][k])} | "
                     f"{_fmt(frozen) if frozen else '-'} | {_fmt(s['wall_clock']['projection_speedup_vs_base'][k])} |")
    lines += ["", "CSR vs dense storage at the same keep (speed-up = dense time / CSR time, paired):", ""]
    lines += [f"- keep {k}: forward {_fmt(v['forward'])}, frozen projection {_fmt(v['projection_frozen'])}"
              for k, v in s["csr_speedup_vs_dense"].items()]
    semi = s["semi24"]
    lines += ["", f"semi24 (2:4): {'timed above' if semi['timed'] else 'not timed: ' + str(semi['why_not'])}.", "",
              f"**Verdict: {s['verdict_macs']}; measured on this CPU ({CLOCK_NAMES[s['clock']]}):**", ""]
    lines += [f"- {k}: q/k/v projection (with its LoDA adapter) {v['qkv_projection']}; whole forward {v['forward']}"
              for k, v in s["verdict_measured"].items()]
    return lines + [""]


def markdown(rec: dict[str, Any]) -> str:
    m = rec["machine"]
    lines = [f"# Cost claims: {rec['name']}", "", f"`{rec['command']}`", "",
             f"Machine: {m['cpu']}, {m['cpu_count']} cores, load at start {m['load_average_at_start']}, "
             f"torch {m['torch']} ({m['torch_num_threads']} thread(s)), device {m['device']}. "
             f"Warm-up {rec['warmup']}, timed rounds {rec['reps']}; wall time {rec.get('wall_time_s')} s.", "",
             f"Noise: {rec['noise_note']} The papers measured on GPUs (CondLoRA: one A100); these verdicts are about this machine.", ""]
    if rec.get("note"):
        lines += [f"Note: {rec['note']}", ""]
    if "condlora" in rec:
        lines += markdown_condlora(rec["condlora"])
    if "s_loda" in rec:
        lines += markdown_s_loda(rec["s_loda"])
    return "\n".join(lines) + "\n"


def _shape(text: str, flag: str) -> tuple[int, int]:
    try:
        b, s = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: use BATCHxSEQ, e.g. 16x128") from None
    return b, s


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lodabench.bench cost-claims", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--quick", action="store_true", help="tiny models and shapes (tests)")
    p.add_argument("--out", default=None, help="record path (.json) or folder (default results/bench/)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=None, help="timed rounds (default 5; --quick 2)")
    p.add_argument("--condlora-shapes", default=None,
                   help="training BATCHxSEQ list (default 16x128,1x128: the paper's batch, and make bench's CPU shape)")
    p.add_argument("--infer-shape", default=None, help="S-LoDA inference BATCHxSEQ (default 1x128)")
    p.add_argument("--keeps", default="0.4,0.5,0.6", help="S-LoDA keep fractions (LoDA paper: 0.4/0.5/0.6)")
    p.add_argument("--reference-step", action="store_true",
                   help="also time the whole step of CondLoRA's two-matmul rebuild (condlora_reference)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default=None)
    p.add_argument("--markdown-from", default=None, metavar="JSON", help="only rewrite JSON's .md from the record")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.markdown_from:
        rewrite_markdown(Path(args.markdown_from))
        return 0
    parts = [p for p in args.parts.split(",") if p]
    if bad := [p for p in parts if p not in PARTS]:
        raise ConfigError(f"--parts: unknown part(s) {bad}; valid: {', '.join(PARTS)}")
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reps = (2 if args.quick else 5) if args.reps is None else args.reps
    started = dt.datetime.now()
    out = Path(args.out) if args.out else REPO_ROOT / "results" / "bench"
    json_path = out if out.suffix == ".json" else out / f"{started:%Y%m%d-%H%M%S}-cost-claims.json"
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    rec: dict[str, Any] = {"name": json_path.stem, "started": started.isoformat(timespec="seconds"), "quick": args.quick,
                           "command": "python -m lodabench.bench cost-claims " + " ".join(map(shlex.quote, argv)),
                           "machine": machine_info(device), "warmup": args.warmup, "reps": reps, "note": args.note,
                           "noise_note": NOISE_NOTE}
    if "condlora" in parts:
        shapes = [_shape(t, "--condlora-shapes") for t in (args.condlora_shapes or ("2x16" if args.quick else "16x128,1x128")).split(",")]
        rec["condlora"] = run_condlora(shapes, args.warmup, reps, device, "tiny-roberta" if args.quick else "roberta-base",
                                       log, args.reference_step)
        _save(rec, json_path, t0)
    if "s_loda" in parts:
        shape = _shape(args.infer_shape or ("1x16" if args.quick else "1x128"), "--infer-shape")
        keeps = tuple(float(k) for k in args.keeps.split(",") if k)
        rec["s_loda"] = run_s_loda(shape, keeps, args.warmup, reps, device, "tiny-gpt2" if args.quick else "gpt2-medium", log)
    _save(rec, json_path, t0)
    log(f"wrote {json_path} and {json_path.with_suffix('.md')}")
    print(markdown(rec))
    return 0


def _save(rec: dict[str, Any], json_path: Path, t0: float) -> None:
    rec["wall_time_s"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(json_path, rec)
    atomic_write_text(json_path.with_suffix(".md"), markdown(rec))


def rewrite_markdown(json_path: Path) -> None:
    """Regenerate a record's .md from its .json (after a change of this module's tables)."""
    import json

    atomic_write_text(json_path.with_suffix(".md"), markdown(json.loads(json_path.read_text(encoding="utf-8"))))
