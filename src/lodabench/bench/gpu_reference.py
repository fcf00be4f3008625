"""The other implementations ``make bench-gpu`` times beside ours (gpu.py runs them as sections).

* ``peft_section``: PEFT's LoRA training step on the same random-init GPT-2 and batch as our LoRA,
  round-robin beside it, with the same optimizers (our fused ``lora_adamw``; ``torch.optim.AdamW``).
  **How PEFT's configuration differs from ours** (``PEFT_VS_OURS``): GPT-2's q, k and v come from one
  fused ``c_attn`` (Conv1D, 1024 -> 3072). Our LoRA (methods/lora.py, methods/delta.py) puts one
  (A, B) pair on the q columns and one on the v columns, as loralib's ``MergedLinear(enable_lora=
  [True, False, True])`` in microsoft/LoRA; k gets no update. PEFT (0.13-0.21) has no way to adapt a
  column slice of one module, so the nearest configuration is ``LoraConfig(target_modules=["c_attn"],
  r=4, lora_alpha=32, lora_dropout=0.1, fan_in_fan_out=True)`` (bench/variants.py ``peft_lora``): one
  A (4 x 1024) shared by q, k and v and one B (3072 x 4), so it also adapts k. Same rank, scaling
  (alpha / r = 8), dropout, trainable parameters (per layer 4*1024 + 3072*4 = 2 * (4*1024 + 1024*4) =
  16,384) and adapter multiply-adds per token (4 r d); it differs in what it can express (k adapted,
  one shared A) and in its operators (one A/B pair, no slice-and-concatenate).
* ``reference_section``: microsoft/LoRA's own training step (gpt2_ft.py's inner loop: its
  GPT2LMModel, loralib r=4 / alpha 32 on q, v, its AdamW), from a checkout given as ``--lora-repo``
  (``LORA_REPO``; never committed here).
* ``their_beam``: microsoft/LoRA's gpt2_beam.py beam search, run as that file's own ``beam(model,
  data_iter, args)`` function, unmodified, imported from the checkout. Its arguments are those of the
  E2E recipe (examples/NLG/README.md: ``--beam 10 --eval_len 64 --seq_len 512 --no_repeat_ngram_size 4
  --repetition_penalty 1.0 --eos_token_id 628``; length penalty as our decode section), its model a
  random-init ``GPT2LMModel`` of the base model's size with LoRA r=4 (merged by loralib in eval mode),
  its batches what its ``FT_Dataset`` builds (the prompt right-padded to ``--seq_len`` by its
  ``padding_tokens``). Two things around it are replaced, as a world of one process needs: the
  module-level ``args`` its ``_add_beam_candidate`` reads (set by its ``__main__``) and its
  ``distributed_gather`` / ``distributed_sync`` (an ``all_gather`` / barrier over one rank: identity /
  nothing). Its prediction file goes to a temporary folder; its prints are swallowed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch
import torch.nn as nn

from lodabench.bench.gpu_steps import (BEAM, SectionSkipped, aten_calls, first_call_s, optimizer,
                                       peak_mib, torch_adamw, train_step, variant)
from lodabench.bench.timing import Stats, paired_ratio, round_robin

PEFT_VS_OURS = ("PEFT: LoraConfig(target_modules=['c_attn'], r=4, lora_alpha=32, lora_dropout=0.1, fan_in_fan_out=True): "
                "one A (r x d) shared by q, k, v and one B (3d x r) over the fused c_attn, so k is adapted too; ours: "
                "one (A, B) per q and v column slice, k untouched (loralib MergedLinear's enable_lora=[T, F, T]). "
                "Same r, alpha/r, dropout, trainable parameter count and adapter MACs per token (4 r d per layer).")
# microsoft/LoRA's modules by the names its scripts import them (examples/NLG/src on sys.path).
_LORA_MODULES = ("loralib", "model", "optimizer", "gpu", "exp_utils", "data_utils", "gpt2_beam")


def _lora_import(repo: Path, name: str):
    """``name`` from the checkout ``repo`` (its root for loralib, examples/NLG/src for the scripts),
    dropping a cached module of one of its names that came from elsewhere (another checkout)."""
    repo = repo.resolve()
    for path in (repo, repo / "examples" / "NLG" / "src"):
        while str(path) in sys.path:
            sys.path.remove(str(path))
        sys.path.insert(0, str(path))
    for mod in _LORA_MODULES:
        cached = sys.modules.get(mod)
        if cached is not None and not str(getattr(cached, "__file__", "") or "").startswith(str(repo)):
            for key in [k for k in sys.modules if k == mod or k.startswith(mod + ".")]:
                del sys.modules[key]
    return importlib.import_module(name)


def peft_section(base: nn.Module, shape: tuple[int, int], reps: int, device: str, log) -> dict[str, Any]:
    """PEFT's LoRA step beside ours (module doc), per optimizer; our LoRA / PEFT's, paired per round."""
    from lodabench.bench.train import make_batch

    if importlib.util.find_spec("peft") is None:
        raise SectionSkipped("peft is not installed for this interpreter (make gpu-wheels carries it: "
                             "scripts/gpu_check.py BENCH_EXTRAS); PEFT's LoRA step not timed")
    import peft

    batch, small = make_batch(base, *shape, device), make_batch(base, 2, 16, device)
    fns, peak, params, ops = {}, {}, {}, {}
    for method, name in (("lora", "lora"), ("peft_lora", "peft")):
        for mode in ("eager_fused", "eager_torch_adamw"):
            model = variant(base, method, device)
            key = f"{name}/{mode}"
            fns[key] = train_step(model, batch, optimizer(model, fused=True) if mode == "eager_fused" else torch_adamw(model))
            peak[key] = peak_mib(fns[key], device)  # also the warm-up call (optimizer state)
        params[name] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        counted = variant(base, method, device)
        ops[name] = aten_calls(train_step(counted, small, optimizer(counted, fused=True)))
        log(f"[peft] {name}: built, {ops[name]} aten calls per 2x16 step")
    times = round_robin(fns, 1, reps, device, on_round=lambda r: log(f"[peft] round {r + 1}/{reps + 1}"))
    tokens = shape[0] * shape[1]
    return {"shape": f"{shape[0]}x{shape[1]}", "peft_version": peft.__version__, "config": PEFT_VS_OURS,
            "trainable_params": params, "step_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in times.items()},
            "tokens_per_s": {k: round(tokens / Stats.of(t).median, 1) for k, t in times.items()},
            "peak_memory_mib": peak, "aten_calls_2x16_fused": ops,
            "lora_over_peft": {m: paired_ratio(times, f"lora/{m}", f"peft/{m}").as_dict(1, 3)
                               for m in ("eager_fused", "eager_torch_adamw")}}


def reference_section(repo: Path, base: nn.Module, smoke: bool, shape: tuple[int, int], reps: int, device: str,
                      log) -> dict[str, Any]:
    """microsoft/LoRA's own training step (gpt2_ft.py's inner loop: its model, loralib, its AdamW) and
    our LoRA's (eager, fused optimizer) on the same shape, round-robin; ours / its time, paired."""
    from lodabench.bench.train import make_batch

    loralib = _lora_import(repo, "loralib")
    model_mod = _lora_import(repo, "model")
    AdamW = _lora_import(repo, "optimizer").AdamW
    cfg = base.config  # tiny-gpt2 (--smoke) or gpt2-medium: the same size as ours
    torch.manual_seed(0)  # its E2E recipe: --lora_dim 4 --lora_alpha 32 --lora_dropout 0.1 --label_smooth 0.1
    model = model_mod.GPT2LMModel(model_mod.GPT2Config(n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                                       lora_attn_dim=4, lora_attn_alpha=32, lora_dropout=0.1)).to(device)
    loralib.mark_only_lora_as_trainable(model)
    opt = AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.01, eps=1e-6,
                correct_bias=True)
    # As its FT_Dataset's batches: input, target (the input shifted by one) and mask, each (batch, seq), contiguous.
    ids = torch.randint(3, 50000, (shape[0], shape[1] + 1), device=device)
    inputs, targets, mask = ids[:, :-1].contiguous(), ids[:, 1:].contiguous(), torch.ones(shape, device=device)

    def step() -> None:  # gpt2_ft.py train_validate + optimizer_step (--clip 0: no clipping; its scheduler left out)
        model(inputs, lm_labels=targets, lm_mask=mask, label_smooth=0.1)[1].mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    ours = variant(base, "lora", device)
    fns = {"gpt2_ft": step, "lora/eager_fused": train_step(ours, make_batch(base, *shape, device), optimizer(ours, fused=True))}
    times = round_robin(fns, 1, reps, device, on_round=lambda r: log(f"[reference] round {r + 1}/{reps + 1}"))
    tokens = shape[0] * shape[1]
    return {"repo": str(repo), "shape": f"{shape[0]}x{shape[1]}",
            "step_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in times.items()},
            "tokens_per_s": {k: round(tokens / Stats.of(t).median, 1) for k, t in times.items()},
            "ours_lora_eager_fused_over_reference": paired_ratio(times, "lora/eager_fused", "gpt2_ft").as_dict(1, 3),
            "ours_tokens_per_s_over_reference": paired_ratio(times, "gpt2_ft", "lora/eager_fused").as_dict(1, 3)}


def their_beam(repo: Path, base: nn.Module, prompts: list[list[int]], new: int, one_at_a_time: int, smoke: bool,
               device: str, log) -> tuple[dict[str, Callable[[], None]], dict[str, int], dict[str, Any]]:
    """gpt2_beam.py's ``beam()`` on ``prompts`` (module doc): callables ``lora_repo/batched`` (all prompts
    in one batch) and ``lora_repo/one_at_a_time`` (the first ``one_at_a_time`` prompts, batch 1 as its
    README), the items each decodes, and what was run. A callable whose first call fails (e.g. out of
    memory) is left out, with the reason in ``info["unavailable"]``."""
    beam_mod = _lora_import(repo, "gpt2_beam")
    model_mod, data_utils = _lora_import(repo, "model"), _lora_import(repo, "data_utils")
    seq_len = 64 if smoke else 512  # README: --seq_len 512 (the prompt is right-padded to it: its KV cache width)
    cfg = base.config
    torch.manual_seed(0)
    model = model_mod.GPT2LMModel(model_mod.GPT2Config(n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                                       lora_attn_dim=4, lora_attn_alpha=32)).to(device).eval()
    work = tempfile.mkdtemp(prefix="gpt2_beam-")
    args = SimpleNamespace(device=torch.device(device), beam=BEAM["num_beams"], length_penalty=BEAM["length_penalty"],
                           eval_len=new, min_length=0, repetition_penalty=1.0,
                           no_repeat_ngram_size=BEAM["no_repeat_ngram_size"], eos_token_id=list(BEAM["eos"]),
                           rank=0, world_size=1, work_dir=work, output_file="beam_prediction.jsonl")
    beam_mod.args = args  # _add_beam_candidate reads the module-level args its __main__ parses
    beam_mod.distributed_gather = lambda _args, t: t.unsqueeze(0)  # all_gather over one rank
    beam_mod.distributed_sync = lambda _args: None  # a barrier of one rank

    def batch(items: list[tuple[int, list[int]]]) -> dict[str, torch.Tensor]:
        padded = [data_utils.padding_tokens(p, seq_len, 0, -1, max_context_length=seq_len - new) for _, p in items]
        return {"id": torch.tensor([i for i, _ in items]), "query": torch.tensor([q for q, _ in padded]),
                "query_len": torch.tensor([n for _, n in padded])}

    numbered = list(enumerate(prompts))
    loaders = {"lora_repo/batched": [batch(numbered)],
               "lora_repo/one_at_a_time": [batch([item]) for item in numbered[:one_at_a_time]]}
    items = {"lora_repo/batched": len(prompts), "lora_repo/one_at_a_time": min(one_at_a_time, len(prompts))}
    fns, info = {}, {"repo": str(repo), "script": "examples/NLG/src/gpt2_beam.py beam()", "seq_len": seq_len,
                     "args": {k: v for k, v in vars(args).items() if k not in ("device", "work_dir")},
                     "first_call_s": {}, "unavailable": {}}
    for key, loader in loaders.items():
        def run(loader=loader) -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                beam_mod.beam(model, loader, args)
        try:
            info["first_call_s"][key] = first_call_s(run, device)
            fns[key] = run
        except Exception as exc:  # noqa: BLE001 - e.g. CUDA out of memory at batch 16 x beam 10 x 512
            info["unavailable"][key] = f"{type(exc).__name__}: {exc}"[:500]
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
        log(f"[decode] microsoft/LoRA {key}: {info['first_call_s'].get(key, info['unavailable'].get(key))}")
    return fns, items, info
