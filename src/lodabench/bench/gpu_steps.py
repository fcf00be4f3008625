"""What the sections of ``make bench-gpu`` share (gpu.py, gpu_reference.py): the model, the shapes,
the training step and its optimizer, the beam-search prompts, and the ways a section measures or
declines (first-call seconds, CUDA peak memory, aten operator counts, ``SectionSkipped``)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
import torch.nn as nn

from lodabench.bench.timing import synchronize

GPT2_MEDIUM = {"n_layer": 24, "n_embd": 1024, "n_head": 16}  # huggingface.co/gpt2-medium config.json
RECIPE = (8, 512)  # LoRA examples/NLG/README.md (E2E, GPT-2 M): --train_batch_size 8 --seq_len 512
SMOKE = (2, 16)
OPT = {"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "correct_bias": True}  # LoRA Table 11
# Beam search as LoRA's E2E decoding (examples/NLG/README.md, gpt2_beam.py: --beam 10 --no_repeat_ngram_size 4
# --eos_token_id 628 on top of its default 50256 --eval_len 64); length penalty as our decode section.
BEAM = {"num_beams": 10, "length_penalty": 0.9, "no_repeat_ngram_size": 4, "eos": (50256, 628), "prompt_tokens": 30}


class SectionSkipped(Exception):
    """Raised by a section that cannot run here (e.g. peft not installed): recorded in ``skipped``, not ``errors``."""


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


def decode_prompts(smoke: bool) -> tuple[list[list[int]], int]:
    """Random prompts of 30 tokens (E2E's meaning representations are ~30 GPT-2 tokens), new tokens."""
    n, new = (2, 4) if smoke else (16, 64)
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 50000, (BEAM["prompt_tokens"],), generator=g).tolist() for _ in range(n)], new


def optimizer(model: nn.Module, fused: bool) -> torch.optim.Optimizer:
    from lodabench.train.optim import FusedLoRAAdamW, LoRAAdamW

    params = [p for p in model.parameters() if p.requires_grad]
    return (FusedLoRAAdamW if fused else LoRAAdamW)(params, **OPT)


def torch_adamw(model: nn.Module) -> torch.optim.Optimizer:
    """torch.optim.AdamW with LoRA's settings (it always corrects the bias, as ``correct_bias=True``)."""
    kw = {k: v for k, v in OPT.items() if k != "correct_bias"}
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], **kw)


def train_step(model: nn.Module, batch, opt: torch.optim.Optimizer) -> Callable[[], None]:
    """Forward, LM loss (label smoothing 0.1, bench/train.py), backward, optimizer step, zero_grad."""
    from lodabench.bench.train import loss_fn

    def step() -> None:
        loss_fn(model, "gpt2", batch).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def variant(base: nn.Module, method: str, device: str, **overrides: Any) -> nn.Module:
    """``method`` (or ``peft_lora``: PEFT's LoRA, bench/variants.py) on a copy sharing ``base``'s weights, train mode."""
    from lodabench.bench.variants import Variant, build_variant

    return build_variant(base, Variant(method, method, overrides), device).train()


def peak_mib(fn: Callable[[], None], device: str) -> float | None:
    """CUDA peak allocated memory (MiB) of one call; None on the CPU."""
    if torch.device(device).type != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def first_call_s(fn: Callable[[], None], device: str) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return round(time.perf_counter() - t0, 2)


def aten_calls(step: Callable[[], None]) -> int:
    """aten operator calls of one call of ``step`` (torch.profiler, CPU side); one untimed call first
    so lazily created state (optimizer moments) stays outside the count."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return int(sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")))
