"""Training-step time and memory per method: forward + loss + backward + AdamW step.

The step is the trainer's: ``lodabench.tasks.losses.lm_loss`` (label smoothing 0.1, loss on the second
half of each row as the target) for GPT-2, ``classification_loss`` for RoBERTa, AdamW over the
trainable tensors with the trainer's defaults, ``zero_grad(set_to_none=True)``. Inputs are random
token ids of the timed shape, full attention mask; the model is in train mode (method dropout on).

Memory (``memory_mib``), measured once per method in an extra untimed step, in a way that is
comparable across methods on CPU (the process RSS is not: a dozen models share one process):

* ``trainable`` / ``grads``: bytes of the trainable tensors and of their gradients;
* ``optimizer``: bytes of the AdamW state after the step (exp_avg, exp_avg_sq, step);
* ``activations``: bytes of the tensors autograd saves for backward, counted once per storage
  (``torch.autograd.graph.saved_tensors_hooks``), not counting model parameters or buffers;
* ``total`` = the sum: what training this method adds on top of the frozen base weights;
* on CUDA also ``cuda_step_peak``: ``torch.cuda.max_memory_allocated`` during a step minus the
  memory allocated before it (activations, gradients and temporaries at their peak).

``params[method]["aten_ops_q_module_fwd_bwd"]`` counts the aten operator calls of one
forward+backward of layer 0's q/k/v module (count_ops): where a GPU step is bound by operator
launches rather than FLOPs, the step-time ratios follow these counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from lodabench.bench.timing import Stats, paired_ratio, round_robin
from lodabench.bench.variants import Variant, build_base, build_variant, method_cfg
from lodabench.tasks.losses import classification_loss, lm_loss
from lodabench.methods import count_parameters, targets

TRAIN_METHODS = ("lora", "loda", "loda_plus", "condlora", "dora", "r_loda", "s_loda", "adapter_h",
                 "prefix", "prompt", "ft_qv")
MIB = 2**20


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    labels: torch.Tensor


def make_batch(model: nn.Module, batch: int, seq: int, device: torch.device | str, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(3, vocab, (batch, seq), generator=g)
    loss_mask = torch.zeros(batch, seq, dtype=torch.long)
    loss_mask[:, seq // 2:] = 1
    labels = torch.randint(0, 2, (batch,), generator=g)
    return Batch(ids.to(device), torch.ones_like(ids).to(device), loss_mask.to(device), labels.to(device))


def loss_fn(model: nn.Module, family: str, b: Batch) -> torch.Tensor:
    out = model(input_ids=b.input_ids, attention_mask=b.attention_mask)
    if family == "gpt2":
        return lm_loss(out.logits, b.input_ids, b.loss_mask, label_smoothing=0.1)
    return classification_loss(out.logits, b.labels, is_regression=False)


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=2e-4, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6)


def step_fn(model: nn.Module, family: str, b: Batch, opt: torch.optim.Optimizer) -> Callable[[], None]:
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model, family, b).backward()
        opt.step()
    return step


def _storage_key(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def measure_memory(model: nn.Module, family: str, b: Batch, opt: torch.optim.Optimizer,
                   device: torch.device | str) -> dict[str, float]:
    """One step with saved-tensor accounting (module doc); returns MiB per component."""
    model_storages = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr, nbytes = _storage_key(t)
        if ptr not in model_storages and ptr != 0:
            saved[ptr] = max(saved.get(ptr, 0), nbytes)
        return t

    cuda = torch.device(device).type == "cuda"
    opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model, family, b)
    loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    opt.step()
    if cuda:
        torch.cuda.synchronize()
        step_peak = torch.cuda.max_memory_allocated() - before
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                if isinstance(t, torch.Tensor))
    acts = sum(saved.values())
    out = {"trainable": trainable / MIB, "grads": grads / MIB, "optimizer": state / MIB,
           "activations": acts / MIB, "total": (trainable + grads + state + acts) / MIB}
    if cuda:
        out["cuda_step_peak"] = step_peak / MIB
    opt.zero_grad(set_to_none=True)
    return {k: round(v, 2) for k, v in out.items()}


def _q_module(model: nn.Module) -> nn.Module:
    """The module that computes layer 0's q (GPT-2: c_attn) as the method left it (PEFT too)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return targets.projections(inner, 0)["q"].module


def count_ops(model: nn.Module, device: torch.device | str, tokens: int = 8) -> int | None:
    """aten operator calls (nested ones included) of one forward+backward of layer 0's q/k/v
    module on a (1, tokens, d) input: a noise-free count of what a launch-bound GPU step pays
    per adapted module. None for methods that do not wrap the projection (prefix, prompt...)."""
    from torch.profiler import ProfilerActivity, profile

    try:
        module = _q_module(model)
    except Exception:  # noqa: BLE001 - wrapper models without a reachable projection
        return None
    d = targets.hidden_size(model.get_base_model() if hasattr(model, "get_base_model") else model)
    x = torch.randn(1, tokens, d, device=device)
    if not any(p.requires_grad for p in module.parameters()):
        return None
    module(x).sum().backward()  # warm-up (lazy init outside the count)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        module(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return int(sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")))


def train_variants(methods: tuple[str, ...] = TRAIN_METHODS, peft: bool = True, hidden: int = 1024) -> list[Variant]:
    """One variant per method with its method defaults; R-LoDA's rank is capped at d/2 so
    the tiny --quick models (d = 64) accept it (the default R = 400 needs d >= 400)."""
    vs = [Variant(m, m, {"rank": min(method_cfg(m)["rank"], hidden // 2)} if m.startswith("r_loda") else {})
          for m in methods]
    if peft:
        vs.append(Variant("peft_lora", "peft_lora"))
    return vs


def run_training(model_name: str, shapes: list[tuple[int, int]], warmup: int, reps: int,
                 device: torch.device | str = "cpu", methods: tuple[str, ...] = TRAIN_METHODS,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time a training step of every method on ``model_name`` for each (batch, seq) shape."""
    base = build_base(model_name, device=device)
    family = targets.family(base)
    variants = train_variants(methods, hidden=targets.hidden_size(base))
    models, params = {}, {}
    for v in variants:
        models[v.label] = build_variant(base, v, device).train()
        c = count_parameters(models[v.label])
        params[v.label] = {"trainable": c["trainable"], "trainable_without_head": c["trainable_without_head"],
                           "aten_ops_q_module_fwd_bwd": count_ops(models[v.label], device)}
    log(f"[train] {model_name}: built {len(models)} variants")
    result: dict[str, Any] = {"model": model_name, "family": family, "params": params, "shapes": {}}
    for batch, seq in shapes:
        b = make_batch(base, batch, seq, device)
        opts = {k: make_optimizer(m) for k, m in models.items()}
        # The memory step is a full training step: it doubles as the first warm-up round.
        memory = {k: measure_memory(m, family, b, opts[k], device) for k, m in models.items()}
        fns = {k: step_fn(m, family, b, opts[k]) for k, m in models.items()}
        times = round_robin(fns, max(warmup - 1, 0), reps, device,
                            on_round=lambda r: log(f"[train] {model_name} {batch}x{seq} round {r + 1}/{max(warmup - 1, 0) + reps}"))
        shape: dict[str, Any] = {"step_ms": {k: Stats.of(t).as_dict(1e3, 2) for k, t in times.items()},
                                 "memory_mib": memory, "ratio_to_lora": {}, "ratio_to_peft_lora": {}}
        for k in times:
            if "lora" in times:
                shape["ratio_to_lora"][k] = paired_ratio(times, k, "lora").as_dict(1, 3)
            if "peft_lora" in times:
                shape["ratio_to_peft_lora"][k] = paired_ratio(times, k, "peft_lora").as_dict(1, 3)
        result["shapes"][f"{batch}x{seq}"] = shape
        del opts, fns
    return result
