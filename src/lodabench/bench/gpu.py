"""The measurements of ``make bench-gpu`` (scripts/bench_gpu.py runs this module with the GPU machine's torch).

``python -m lodabench.bench.gpu [--smoke] [--out FILE] [--lora-repo DIR] [--budget-s S] [--reps N]``

Sections, in the order they run (the ones with a goal against another implementation first: they are
short, while the train section's compile warm-ups are long and the least predictable):

* ``peft``: PEFT's LoRA training step beside ours on the same random-init GPT-2 (medium, or tiny-gpt2
  with ``--smoke``) and batch, round-robin, each with our fused ``lora_adamw`` and with
  ``torch.optim.AdamW``; step ms, tokens/s, CUDA peak memory, aten calls of a 2 x 16 step, our LoRA /
  PEFT's time paired per round. PEFT adapts GPT-2's whole fused c_attn (q, k and v, one shared A), ours
  the q and v column slices: same rank, scaling, parameter count and adapter MACs (gpu_reference.py
  says exactly how they differ). Without peft installed: a skipped section, with the reason.
* ``reference`` (``--lora-repo``, ``LORA_REPO``: a checkout of microsoft/LoRA, never committed here): its
  GPT2LMModel + loralib (r=4, alpha 32 on q,v as its E2E recipe) and its AdamW, one gpt2_ft.py training
  step, round-robin beside our LoRA step (eager, fused optimizer) on the same shape; ours / its time and
  its / ours (= our tokens/s over its), paired.
* ``decode``: beam 10 (the hf_compatible decoder, no_repeat_ngram 4, EOS 50256 and 628) on random prompts
  of 30 tokens (E2E's meaning representations are ~30 GPT-2 tokens), 64 new tokens: items/s with all 16
  prompts in one batch and with the first 4 one at a time. With ``--lora-repo`` microsoft/LoRA's
  gpt2_beam.py ``beam()`` (its own code, imported from the checkout: gpu_reference.their_beam) decodes
  the same prompts in the same rounds, batched and one at a time (its README's ``--batch_size 1``);
  ``reference.ours_items_per_s_over_reference`` pairs each of ours with its counterpart per round.
  3 timed rounds outside ``--smoke`` (a round decodes every variant once).
* ``train``: one training step (forward, LM loss with label smoothing 0.1, backward, optimizer
  step) of LoRA, LoDA, LoDA+, CondLoRA and FT^{Wq,Wv} on a random-init GPT-2 medium (24 x 1024,
  16 heads: huggingface.co/gpt2-medium config.json; no weights are needed for timing) at the LoRA
  E2E recipe's shape (examples/NLG/README.md: --train_batch_size 8 --seq_len 512), in three modes:
  ``eager_loop`` (trainer.optimizer=lora_adamw_loop: the code before issue #30), ``eager_fused``
  (lora_adamw) and ``compiled_fused`` (trainer.compile=true: torch.compile of the model, lora_adamw).
  Per method and mode: median step ms over round-robin rounds (timing.py), tokens/s, CUDA peak memory
  of a step; the first compiled call's seconds (warm-up) separately; ratios to LoRA per mode.
* ``op_counts``: aten operator calls of one training step per method (torch.profiler on the CPU side):
  where the GPU step is launch-bound, the ratio LoDA / LoRA follows these counts.
* ``s_loda``: S-LoDA inference forward and training step with ``method.storage`` dense / sparse_csr /
  semi24 at keep 0.4 / 0.5 / 0.6 (semi24: 0.5 only, 2:4); a storage whose kernel does not exist here
  (semi24 on a CPU) is recorded with the reason.

``goals``: LoDA step <= 1.05x LoRA; our LoRA tokens/s >= 1.5x gpt2_ft.py's; our LoRA step <= 1.0x PEFT's
(fused optimizer for both); our beam items/s >= 1.0x gpt2_beam.py's, batched and one at a time.

``--smoke``: tiny-gpt2, batch 2 x 16 tokens, 2 prompts and 4 new tokens, 2 rounds, no compiled mode
(inductor's CPU warm-up is minutes), so the path runs on a CPU in seconds (tests/test_bench_gpu.py).
Sections are guarded: one that fails is recorded in ``errors``, one that cannot run here (no peft) in
``skipped``, and the others still run; the record is rewritten after each section. ``--budget-s``
(default 240): a section that would start after it is skipped (recorded), and the decode and train
sections start no further round (train: no further compiled model) once it has passed, so the run
ends about one round after it.
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

from lodabench.bench.gpu_reference import peft_section, reference_section, their_beam
from lodabench.bench.gpu_steps import (BEAM, RECIPE, SMOKE, SectionSkipped, aten_calls, base_model, decode_prompts,
                                       first_call_s, optimizer, peak_mib, train_step, variant)
from lodabench.bench.timing import Stats, paired_ratio, round_robin
from lodabench.io import atomic_write_json

METHODS = ("lora", "loda", "loda_plus", "condlora", "ft_qv")
MODES = ("eager_loop", "eager_fused", "compiled_fused")
S_LODA = [("dense", 0.4), ("dense", 0.5), ("dense", 0.6), ("sparse_csr", 0.4), ("sparse_csr", 0.5),
          ("sparse_csr", 0.6), ("semi24", 0.5)]  # LoDA App. A.4: keep 0.4/0.5/0.6; 2:4 keeps exactly half
DECODE_ROUNDS = 3  # timed beam-search rounds outside --smoke (each round decodes every variant once)
ONE_AT_A_TIME = 4  # prompts decoded one at a time (items/s divides by it); all prompts go in the batched call


def train_section(base: nn.Module, shape: tuple[int, int], reps: int, device: str, log,
                  modes: tuple[str, ...] = MODES, until: float | None = None) -> dict[str, Any]:
    """Per method and mode one step's first call, peak memory, then round-robin rounds. Past ``until``
    (--budget-s) no further compiled model is built (its warm-up is the long part; listed in
    ``not_built``) and no further round starts."""
    from lodabench.bench.train import make_batch

    batch = make_batch(base, *shape, device)
    fns, warm, peak, not_built = {}, {}, {}, []
    for method in METHODS:
        for mode in modes:
            key = f"{method}/{mode}"
            if mode == "compiled_fused" and until is not None and time.monotonic() > until:
                not_built.append(key)
                continue
            model = variant(base, method, device)
            run = torch.compile(model) if mode == "compiled_fused" else model
            fns[key] = train_step(run, batch, optimizer(model, fused=mode != "eager_loop"))
            warm[key] = first_call_s(fns[key], device)  # compile warm-up for the compiled mode
            peak[key] = peak_mib(fns[key], device)
            log(f"[train] {key}: first call {warm[key]} s")
    times = _timed_rounds(fns, reps, device, until, log, "train")
    tokens = shape[0] * shape[1]

    def ratios(pairs) -> dict[str, Any]:
        return {k: paired_ratio(times, a, b).as_dict(1, 3) for k, a, b in pairs if a in times and b in times}
    return {"shape": f"{shape[0]}x{shape[1]}", "step_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in times.items()},
            "tokens_per_s": {k: round(tokens / Stats.of(t).median, 1) for k, t in times.items()},
            "first_call_s": warm, "peak_memory_mib": peak, "not_built": not_built,
            "ratio_to_lora": ratios((f"{m}/{mode}", f"{m}/{mode}", f"lora/{mode}")
                                    for m in METHODS if m != "lora" for mode in modes),
            "fused_speedup": ratios((m, f"{m}/eager_loop", f"{m}/eager_fused") for m in METHODS),
            "compiled_speedup": ratios((m, f"{m}/eager_fused", f"{m}/compiled_fused") for m in METHODS)}


def _timed_rounds(fns: dict[str, Callable[[], object]], rounds: int, device: str, until: float | None, log,
                  tag: str) -> dict[str, list[float]]:
    """round_robin (one warm-up round, the order rotated each round) one round at a time, stopping
    early once ``until`` (time.monotonic) has passed, after at least one timed round."""
    names, times = list(fns), {n: [] for n in fns}
    for rnd in range(rounds + 1):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        got = round_robin({n: fns[n] for n in order}, 0 if rnd else 1, 1 if rnd else 0, device)
        for n, t in got.items():
            times[n] += t
        log(f"[{tag}] round {rnd + 1}/{rounds + 1}")
        if rnd >= 1 and until is not None and time.monotonic() > until and rnd < rounds:
            log(f"[{tag}] past --budget-s: stopping after {rnd} timed round(s)")
            break
    return times


def _per_item_ratio(times: dict[str, list[float]], items: dict[str, int], num: str, den: str) -> dict[str, float]:
    """Paired per round: (num's seconds per item) / (den's seconds per item)."""
    return Stats.of([(a / items[num]) / (b / items[den]) for a, b in zip(times[num], times[den])]).as_dict(1, 3)


def decode_section(base: nn.Module, smoke: bool, reps: int, device: str, log, theirs=None,
                   until: float | None = None) -> dict[str, Any]:
    """Beam 10 on random prompts of 30 tokens: ours batched and one at a time, and with ``theirs``
    (gpu_reference.their_beam) microsoft/LoRA's gpt2_beam.py on the same prompts, in the same rounds."""
    from lodabench.tasks.decoding import decode_tokens, decoding_config

    prompts, new = decode_prompts(smoke)
    n, single = len(prompts), prompts[:ONE_AT_A_TIME]
    model = base.eval()
    common = dict(num_beams=BEAM["num_beams"], max_new_tokens=new, length_penalty=BEAM["length_penalty"],
                  no_repeat_ngram_size=BEAM["no_repeat_ngram_size"], progress=False)
    runs = {"batched": (decoding_config(common, impl="lora", hf_compatible=True, batch_size=n), prompts),
            "one_at_a_time": (decoding_config(common, impl="lora", hf_compatible=True, batch_size=1), single)}

    def ours(cfg, ps) -> None:
        with torch.no_grad():
            decode_tokens(model, ps, cfg, list(BEAM["eos"]), 50256)
    fns: dict[str, Callable[[], object]] = {k: (lambda c=c, ps=ps: ours(c, ps)) for k, (c, ps) in runs.items()}
    items = {k: len(ps) for k, (_, ps) in runs.items()}
    their_fns, their_items, info = theirs or ({}, {}, None)
    fns.update(their_fns)
    items.update(their_items)
    times = _timed_rounds(fns, reps if smoke else min(reps, DECODE_ROUNDS), device, until, log, "decode")
    out = {"prompts": n, "one_at_a_time_prompts": len(single), "prompt_tokens": BEAM["prompt_tokens"],
           "num_beams": BEAM["num_beams"], "max_new_tokens": new, "rounds": len(times["batched"]),
           "items_per_s": {k: round(items[k] / Stats.of(t).median, 3) for k, t in times.items()},
           "batched_speedup": _per_item_ratio(times, items, "one_at_a_time", "batched")}
    if info is not None:
        info["ours_items_per_s_over_reference"] = {
            mode: _per_item_ratio(times, items, f"lora_repo/{mode}", mode)
            for mode in ("batched", "one_at_a_time") if f"lora_repo/{mode}" in times}
        out["reference"] = info
    return out


def s_loda_section(base: nn.Module, shape: tuple[int, int], reps: int, device: str, log) -> dict[str, Any]:
    from lodabench.bench.train import make_batch

    batch = make_batch(base, *shape, device)
    out: dict[str, Any] = {"shape": f"{shape[0]}x{shape[1]}", "infer_ms": {}, "train_ms": {}, "unavailable": {}}
    fns = {}
    for storage, keep in S_LODA:
        key = f"{storage}@{keep}"
        try:
            model = variant(base, "s_loda", device, storage=storage, keep=keep)
        except Exception as exc:  # noqa: BLE001 - e.g. semi24 without its CUDA kernel
            out["unavailable"][key] = f"{type(exc).__name__}: {exc}"
            continue

        def infer(m=model) -> None:
            with torch.no_grad():
                m(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        fns[f"infer:{key}"], fns[f"train:{key}"] = infer, train_step(model, batch, optimizer(model, fused=True))
    times = round_robin(fns, 1, reps, device, on_round=lambda r: log(f"[s_loda] round {r + 1}/{reps + 1}"))
    for k, t in times.items():
        kind, key = k.split(":", 1)
        out[f"{kind}_ms"][key] = Stats.of(t).as_dict(1e3, 2)
    return out


def op_counts(base: nn.Module, device: str) -> dict[str, int]:
    """aten calls of one training step (2 x 16 tokens) per method, eager, fused optimizer."""
    from lodabench.bench.train import make_batch

    batch = make_batch(base, 2, 16, device)
    out = {}
    for method in METHODS:
        model = variant(base, method, device)
        out[method] = aten_calls(train_step(model, batch, optimizer(model, fused=True)))
    return out


class Record:
    """The record, rewritten after each section; a failing section lands in ``errors``, the budget in ``skipped``."""

    def __init__(self, path: Path, data: dict[str, Any], budget_s: float):
        self.path, self.data, self.t0, self.budget_s = path, data, time.monotonic(), budget_s

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    @property
    def until(self) -> float:
        """time.monotonic() at which --budget-s runs out."""
        return self.t0 + self.budget_s

    def section(self, name: str, fn: Callable[[], Any], store: bool = True) -> Any:
        """``fn()`` into the record under ``name`` (or only returned: ``store=False``); None when it was
        skipped (over the budget, or it raised SectionSkipped) or failed."""
        value = None
        if time.monotonic() - self.t0 > self.budget_s:
            self.data["skipped"][name] = f"over --budget-s {self.budget_s} before it started"
        else:
            try:
                value = fn()
                if store:
                    self.data[name] = value
            except SectionSkipped as why:
                self.data["skipped"][name] = str(why)
                self.log(f"{name} skipped: {why}")
            except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
                self.data["errors"][name] = f"{type(exc).__name__}: {exc}"
                self.log(f"{name} FAILED: {exc}")
        self.save()
        return value

    def save(self) -> None:
        self.data["wall_time_s"] = round(time.monotonic() - self.t0, 1)
        atomic_write_json(self.path, self.data)


def _median(data: dict[str, Any], *path: str) -> float | None:
    for key in path:
        data = (data or {}).get(key)
    return data


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #30's GPU goals, from what was measured (None: not measured in this run)."""
    tr, ref = data.get("train") or {}, data.get("reference") or {}
    loda = _median(tr, "ratio_to_lora", "loda/eager_fused", "median")
    vs_ref = _median(ref, "ours_tokens_per_s_over_reference", "median")
    vs_peft = _median(data, "peft", "lora_over_peft", "eager_fused", "median")
    beam = {m: _median(data, "decode", "reference", "ours_items_per_s_over_reference", m, "median")
            for m in ("batched", "one_at_a_time")}
    rows = [("LoDA step <= 1.05x LoRA (eager, fused optimizer)", loda, lambda x: x <= 1.05),
            ("our LoRA tokens/s >= 1.5x microsoft/LoRA gpt2_ft.py", vs_ref, lambda x: x >= 1.5),
            ("our LoRA step time <= 1.0x PEFT's LoRA step (eager, fused optimizer for both)", vs_peft, lambda x: x <= 1.0),
            ("our beam items/s >= 1.0x microsoft/LoRA gpt2_beam.py, batched (same prompts and batch)", beam["batched"],
             lambda x: x >= 1.0),
            ("our beam items/s >= 1.0x microsoft/LoRA gpt2_beam.py, one at a time (its README's --batch_size 1)",
             beam["one_at_a_time"], lambda x: x >= 1.0)]
    return [{"goal": g, "measured": m, "met": None if m is None else ok(m)} for g, m, ok in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lodabench.bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny-gpt2, 2 x 16 tokens, 2 rounds (CPU tests)")
    p.add_argument("--out", type=Path, help="record path (default results/bench/<stamp>-gpu.json)")
    p.add_argument("--lora-repo", type=Path, help="a microsoft/LoRA checkout (LORA_REPO) timed beside ours")
    p.add_argument("--budget-s", type=float, default=240.0, help="no section or round starts after this (default %(default)s)")
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
    # The sections with a goal against another implementation first: they are short, and the train
    # section's compile warm-ups are the long, least predictable part.
    rec.section("peft", lambda: peft_section(base, shape, reps, device, rec.log))
    theirs = None
    if args.lora_repo:
        rec.section("reference", lambda: reference_section(args.lora_repo, base, args.smoke, shape, reps, device, rec.log))
        prompts, new = decode_prompts(args.smoke)
        theirs = rec.section("reference_beam", lambda: their_beam(args.lora_repo, base, prompts, new, ONE_AT_A_TIME,
                                                                  args.smoke, device, rec.log), store=False)
    else:
        why = "no --lora-repo / LORA_REPO: microsoft/LoRA's {} not timed"
        rec.data["skipped"].update(reference=why.format("gpt2_ft.py"), reference_beam=why.format("gpt2_beam.py"))
    rec.section("decode", lambda: decode_section(base, args.smoke, reps, device, rec.log, theirs, rec.until))
    rec.section("train", lambda: train_section(base, shape, reps, device, rec.log, modes, rec.until))
    rec.section("op_counts", lambda: op_counts(base, device))
    rec.section("s_loda", lambda: s_loda_section(base, shape, reps, device, rec.log))
    rec.data["goals"] = goals(rec.data)
    rec.save()
    rec.log(f"wrote {out}")
    return 1 if rec.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
