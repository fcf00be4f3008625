"""The measurements of ``make bench-gpu`` (scripts/bench_gpu.py runs this module with the GPU machine's torch).

``python -m lodabench.bench.gpu [--smoke] [--out FILE] [--lora-repo DIR] [--budget-s S]``

* ``train``: one training step (forward, LM loss with label smoothing 0.1, backward, optimizer
  step) of LoRA, LoDA, LoDA+, CondLoRA and FT^{Wq,Wv} on a random-init GPT-2 medium (24 x 1024,
  16 heads: huggingface.co/gpt2-medium config.json; no weights are needed for timing) at the LoRA
  E2E recipe's shape (examples/NLG/README.md: --train_batch_size 8 --seq_len 512), in three modes:
  ``eager_loop`` (trainer.optimizer=lora_adamw_loop: the code before issue #30), ``eager_fused``
  (lora_adamw) and ``compiled_fused`` (trainer.compile=true: torch.compile of the model, lora_adamw).
  Per method and mode: median step ms over round-robin rounds (timing.py), tokens/s, CUDA peak memory
  of a step; the first compiled call's seconds (warm-up) separately; ratios to LoRA per mode.
* ``decode``: our beam search (beam 10, the hf_compatible decoder) on random prompts of E2E's length,
  items/s all at once (batch = prompts) and one at a time.
* ``s_loda``: S-LoDA inference forward and training step with ``method.storage`` dense / sparse_csr /
  semi24 at keep 0.4 / 0.5 / 0.6 (semi24: 0.5 only, 2:4); a storage whose kernel does not exist here
  (semi24 on a CPU) is recorded with the reason.
* ``op_counts``: aten operator calls of one training step per method (torch.profiler on the CPU side):
  where the GPU step is launch-bound, the ratio LoDA / LoRA follows these counts.
* ``reference``: with ``--lora-repo`` (``LORA_REPO``: a checkout of microsoft/LoRA, never committed
  here), its GPT2LMModel + loralib (r=4, alpha 32 on q,v as its E2E recipe) and its AdamW, one
  gpt2_ft.py training step on the same shape and device, timed beside ours; our LoRA / its step.

``--smoke``: tiny-gpt2, batch 2 x 16 tokens, 2 rounds, no compiled mode (inductor's CPU warm-up is
minutes), so the path runs on a CPU in seconds (tests/test_bench_gpu.py). Sections are guarded: one that fails is recorded in ``errors`` and the
others still run; the record is rewritten after each section. ``--budget-s``: sections that would
start after it are skipped (recorded), so the run ends in about that time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from lodabench.bench.timing import Stats, paired_ratio, round_robin, synchronize
from lodabench.io import atomic_write_json

GPT2_MEDIUM = {"n_layer": 24, "n_embd": 1024, "n_head": 16}  # huggingface.co/gpt2-medium config.json
RECIPE = (8, 512)  # LoRA examples/NLG/README.md (E2E, GPT-2 M): --train_batch_size 8 --seq_len 512
SMOKE = (2, 16)
METHODS = ("lora", "loda", "loda_plus", "condlora", "ft_qv")
MODES = ("eager_loop", "eager_fused", "compiled_fused")
S_LODA = [("dense", 0.4), ("dense", 0.5), ("dense", 0.6), ("sparse_csr", 0.4), ("sparse_csr", 0.5),
          ("sparse_csr", 0.6), ("semi24", 0.5)]  # LoDA App. A.4: keep 0.4/0.5/0.6; 2:4 keeps exactly half
OPT = {"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "correct_bias": True}  # LoRA Table 11


def base_model(smoke: bool, device: str) -> nn.Module:
    """tiny-gpt2's conf (GPT-2's vocabulary and positions) at gpt2-medium's size unless ``smoke``; random init."""
    from lodabench.models.pretrained import load_model, read_model_conf

    cfg = read_model_conf("tiny-gpt2")
    if not smoke:
        cfg["config_overrides"] = {**(cfg.get("config_overrides") or {}), **GPT2_MEDIUM}
    torch.manual_seed(0)
    model = load_model(cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def _optimizer(model: nn.Module, fused: bool) -> torch.optim.Optimizer:
    from lodabench.train.optim import FusedLoRAAdamW, LoRAAdamW

    params = [p for p in model.parameters() if p.requires_grad]
    return (FusedLoRAAdamW if fused else LoRAAdamW)(params, **OPT)


def _step(model: nn.Module, batch, opt: torch.optim.Optimizer) -> Callable[[], None]:
    from lodabench.bench.train import loss_fn

    def step() -> None:
        loss_fn(model, "gpt2", batch).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def _variant(base: nn.Module, method: str, device: str, **overrides: Any) -> nn.Module:
    from lodabench.bench.variants import Variant, build_variant

    return build_variant(base, Variant(method, method, overrides), device).train()


def _peak_mib(fn: Callable[[], None], device: str) -> float | None:
    """CUDA peak allocated memory (MiB) of one call; None on the CPU."""
    if torch.device(device).type != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _first_call_s(fn: Callable[[], None], device: str) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return round(time.perf_counter() - t0, 2)


def train_section(base: nn.Module, shape: tuple[int, int], reps: int, device: str, log,
                  modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    from lodabench.bench.train import make_batch

    batch = make_batch(base, *shape, device)
    fns, warm, peak = {}, {}, {}
    for method in METHODS:
        for mode in modes:
            model = _variant(base, method, device)
            run = torch.compile(model) if mode == "compiled_fused" else model
            key = f"{method}/{mode}"
            fns[key] = _step(run, batch, _optimizer(model, fused=mode != "eager_loop"))
            warm[key] = _first_call_s(fns[key], device)  # compile warm-up for the compiled mode
            peak[key] = _peak_mib(fns[key], device)
            log(f"[train] {key}: first call {warm[key]} s")
    times = round_robin(fns, 1, reps, device, on_round=lambda r: log(f"[train] round {r + 1}/{reps + 1}"))
    tokens = shape[0] * shape[1]
    return {"shape": f"{shape[0]}x{shape[1]}", "step_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in times.items()},
            "tokens_per_s": {k: round(tokens / Stats.of(t).median, 1) for k, t in times.items()},
            "first_call_s": warm, "peak_memory_mib": peak,
            "ratio_to_lora": {f"{m}/{mode}": paired_ratio(times, f"{m}/{mode}", f"lora/{mode}").as_dict(1, 3)
                              for m in METHODS if m != "lora" for mode in modes},
            "fused_speedup": {m: paired_ratio(times, f"{m}/eager_loop", f"{m}/eager_fused").as_dict(1, 3) for m in METHODS},
            "compiled_speedup": {m: paired_ratio(times, f"{m}/eager_fused", f"{m}/compiled_fused").as_dict(1, 3)
                                 for m in METHODS if "compiled_fused" in modes}}


def decode_section(base: nn.Module, smoke: bool, reps: int, device: str, log) -> dict[str, Any]:
    """Beam 10 on random prompts of 30 tokens (E2E's meaning representations are ~30 GPT-2 tokens)."""
    from lodabench.tasks.decoding import decode_tokens, decoding_config

    n, new = (2, 4) if smoke else (16, 64)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 50000, (30,), generator=g).tolist() for _ in range(n)]
    model = base.eval()
    common = dict(num_beams=10, max_new_tokens=new, length_penalty=0.9, no_repeat_ngram_size=4, progress=False)
    cfgs = {"batched": decoding_config(common, impl="lora", hf_compatible=True, batch_size=n),
            "one_at_a_time": decoding_config(common, impl="lora", hf_compatible=True, batch_size=1)}
    with torch.no_grad():
        times = round_robin({k: (lambda c=c: decode_tokens(model, prompts, c, [50256, 628], 50256))
                             for k, c in cfgs.items()}, 1, reps, device,
                            on_round=lambda r: log(f"[decode] round {r + 1}/{reps + 1}"))
    return {"prompts": n, "prompt_tokens": 30, "num_beams": 10, "max_new_tokens": new,
            "items_per_s": {k: round(n / Stats.of(t).median, 3) for k, t in times.items()},
            "batched_speedup": paired_ratio(times, "one_at_a_time", "batched").as_dict(1, 3)}


def s_loda_section(base: nn.Module, shape: tuple[int, int], reps: int, device: str, log) -> dict[str, Any]:
    from lodabench.bench.train import make_batch

    batch = make_batch(base, *shape, device)
    out: dict[str, Any] = {"shape": f"{shape[0]}x{shape[1]}", "infer_ms": {}, "train_ms": {}, "unavailable": {}}
    fns = {}
    for storage, keep in S_LODA:
        key = f"{storage}@{keep}"
        try:
            model = _variant(base, "s_loda", device, storage=storage, keep=keep)
        except Exception as exc:  # noqa: BLE001 - e.g. semi24 without its CUDA kernel
            out["unavailable"][key] = f"{type(exc).__name__}: {exc}"
            continue

        def infer(m=model) -> None:
            with torch.no_grad():
                m(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        fns[f"infer:{key}"], fns[f"train:{key}"] = infer, _step(model, batch, _optimizer(model, fused=True))
    times = round_robin(fns, 1, reps, device, on_round=lambda r: log(f"[s_loda] round {r + 1}/{reps + 1}"))
    for k, t in times.items():
        kind, key = k.split(":", 1)
        out[f"{kind}_ms"][key] = Stats.of(t).as_dict(1e3, 2)
    return out


def op_counts(base: nn.Module, device: str) -> dict[str, int]:
    """aten calls of one training step (2 x 16 tokens) per method, eager, fused optimizer."""
    from torch.profiler import ProfilerActivity, profile

    from lodabench.bench.train import make_batch

    batch, out = make_batch(base, 2, 16, device), {}
    for method in METHODS:
        model = _variant(base, method, device)
        step = _step(model, batch, _optimizer(model, fused=True))
        step()  # lazy state outside the count
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        out[method] = int(sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")))
    return out


def reference_section(repo: Path, smoke: bool, shape: tuple[int, int], reps: int, device: str, ours_ms: float | None,
                      log) -> dict[str, Any]:
    """microsoft/LoRA's own training step (gpt2_ft.py's inner loop: its model, loralib, its AdamW)."""
    for path in (repo, repo / "examples" / "NLG" / "src"):
        sys.path.insert(0, str(path))
    import loralib  # noqa: PLC0415 - from the LORA_REPO checkout
    from model import GPT2Config, GPT2LMModel  # noqa: PLC0415
    from optimizer import AdamW  # noqa: PLC0415

    size = {"n_embd": 64, "n_layer": 2, "n_head": 2} if smoke else GPT2_MEDIUM
    torch.manual_seed(0)  # its E2E recipe: --lora_dim 4 --lora_alpha 32 --lora_dropout 0.1 --label_smooth 0.1
    model = GPT2LMModel(GPT2Config(**size, lora_attn_dim=4, lora_attn_alpha=32, lora_dropout=0.1)).to(device)
    loralib.mark_only_lora_as_trainable(model)
    opt = AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.01, eps=1e-6,
                correct_bias=True)
    ids = torch.randint(3, 50000, shape, device=device)
    mask = torch.ones(shape, device=device)

    def step() -> None:
        model(ids[:, :-1], lm_labels=ids[:, 1:], lm_mask=mask[:, 1:], label_smooth=0.1)[1].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    times = round_robin({"gpt2_ft": step}, 1, reps, device, on_round=lambda r: log(f"[reference] round {r + 1}"))
    ms = Stats.of(times["gpt2_ft"]).median * 1e3
    return {"repo": str(repo), "step_ms": round(ms, 2), "tokens_per_s": round(shape[0] * shape[1] / ms * 1e3, 1),
            "ours_lora_eager_fused_over_reference": round(ours_ms / ms, 3) if ours_ms else None}


class Record:
    """The record, rewritten after each section; a failing section lands in ``errors``, the budget in ``skipped``."""

    def __init__(self, path: Path, data: dict[str, Any], budget_s: float):
        self.path, self.data, self.t0, self.budget_s = path, data, time.monotonic(), budget_s

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def section(self, name: str, fn: Callable[[], Any]) -> None:
        if time.monotonic() - self.t0 > self.budget_s:
            self.data["skipped"][name] = f"over --budget-s {self.budget_s} before it started"
        else:
            try:
                self.data[name] = fn()
            except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
                self.data["errors"][name] = f"{type(exc).__name__}: {exc}"
                self.log(f"{name} FAILED: {exc}")
        self.save()

    def save(self) -> None:
        self.data["wall_time_s"] = round(time.monotonic() - self.t0, 1)
        atomic_write_json(self.path, self.data)


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #30's GPU goals, from what was measured (None: not measured in this run)."""
    tr, ref = data.get("train") or {}, data.get("reference") or {}
    loda = (tr.get("ratio_to_lora") or {}).get("loda/eager_fused", {}).get("median")
    ours = (tr.get("tokens_per_s") or {}).get("lora/eager_fused")
    vs_ref = round(ours / ref["tokens_per_s"], 3) if ours and ref.get("tokens_per_s") else None
    return [{"goal": "LoDA step <= 1.05x LoRA (eager, fused optimizer)", "measured": loda,
             "met": None if loda is None else loda <= 1.05},
            {"goal": "our LoRA tokens/s >= 1.5x microsoft/LoRA gpt2_ft.py", "measured": vs_ref,
             "met": None if vs_ref is None else vs_ref >= 1.5}]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lodabench.bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny-gpt2, 2 x 16 tokens, 2 rounds (CPU tests)")
    p.add_argument("--out", type=Path, help="record path (default results/bench/<stamp>-gpu.json)")
    p.add_argument("--lora-repo", type=Path, help="a microsoft/LoRA checkout (LORA_REPO) timed beside ours")
    p.add_argument("--budget-s", type=float, default=270.0, help="no section starts after this (default %(default)s)")
    p.add_argument("--reps", type=int, help="timed rounds (default 10; --smoke 2)")
    args = p.parse_args(argv)
    from lodabench.machine import machine_info
    from lodabench.paths import REPO_ROOT

    device = "cuda" if torch.cuda.is_available() else "cpu"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO_ROOT / "results" / "bench" / f"{stamp}-{device}-bench-gpu{'-smoke' if args.smoke else ''}.json"
    shape, reps = (SMOKE, 2) if args.smoke else (RECIPE, 10)
    reps = args.reps or reps
    rec = Record(out, {"name": out.stem, "started": stamp, "smoke": args.smoke, "device": device,
                       "machine": machine_info(device), "command": " ".join(sys.argv), "reps": reps,
                       "model": "tiny-gpt2" if args.smoke else "gpt2-medium (random init)",
                       "skipped": {}, "errors": {}}, args.budget_s)
    base = base_model(args.smoke, device)
    modes = MODES
    if args.smoke:  # inductor's CPU warm-up is minutes; trainer.compile is checked by tests/test_trainer_fast.py
        modes = MODES[:2]
        rec.data["skipped"]["train/compiled_fused"] = "--smoke: torch.compile warm-up on a CPU takes minutes"
    rec.section("train", lambda: train_section(base, shape, reps, device, rec.log, modes))
    rec.section("op_counts", lambda: op_counts(base, device))
    rec.section("decode", lambda: decode_section(base, args.smoke, reps, device, rec.log))
    rec.section("s_loda", lambda: s_loda_section(base, shape, reps, device, rec.log))
    if args.lora_repo:
        ours = (rec.data.get("train") or {}).get("step_ms", {}).get("lora/eager_fused", {}).get("median")
        rec.section("reference", lambda: reference_section(args.lora_repo, args.smoke, shape, reps, device, ours, rec.log))
    else:
        rec.data["skipped"]["reference"] = "no --lora-repo / LORA_REPO: microsoft/LoRA's gpt2_ft.py not timed"
    rec.data["goals"] = goals(rec.data)
    rec.save()
    rec.log(f"wrote {out}")
    return 1 if rec.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
