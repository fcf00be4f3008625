"""The optimizers ``trainer.optimizer`` names: ``lora_adamw`` (LoRA's update rule, each parameter group
updated at once: ``FusedLoRAAdamW`` below), ``lora_adamw_loop`` (the same rule tensor by tensor: ``LoRAAdamW``
below, the code before issue #30, kept unchanged as the baseline and reference) and ``adamw`` (torch).

``lora_adamw`` is the AdamW of microsoft/LoRA ``examples/NLG/src/optimizer.py`` (class ``AdamW``,
built by ``create_adam_optimizer_from_args``), which the LoRA paper's GPT-2 runs used (Table 11:
"Optimizer AdamW"). It is also the update rule of the legacy ``transformers.optimization.AdamW``
that the HF ``Trainer`` of LoRA's NLU fork (transformers 4.4) builds for RoBERTa on GLUE. Per
parameter, at step t, with gradient g, lr the scheduled rate, wd the weight decay:

    m = b1*m + (1-b1)*g                  v = b2*v + (1-b2)*g*g
    denom = sqrt(v) + eps                                         # (1) eps BEFORE the correction
    step_size = lr * sqrt(1-b2**t) / (1-b1**t)   if correct_bias else lr
    p = p - step_size * m / denom
    p = p - lr*wd * p                                             # (2) decay AFTER the Adam step

(LoRA's ``AdamW.step`` in that order: the moments, ``denom = exp_avg_sq.sqrt().add_(group["eps"])``,
the step size "No bias correction for Bert" when ``correct_bias`` is off, ``addcdiv_``, then, in its
own words, "Add weight decay at the end (fixed version)".)

``torch.optim.AdamW`` (``adamw``) differs in exactly two places:

(1) it divides by ``sqrt(v)/sqrt(1-b2**t) + eps``, i.e. eps is added to the bias-CORRECTED
    second moment. Written in torch's form, LoRA's ``sqrt(v) + eps`` is an effective eps of
    ``eps/sqrt(1-b2**t)``: 31.6 eps at step 1, 22.4 eps at step 2, 7.1 eps at step 20 with
    b2 = 0.999 (-> eps as t grows), so LoRA's early steps on small gradients are smaller. With
    eps 1e-6 and the tiny early gradients of a zero-initialised B this is what separates the two
    (measured on ../shared/golden/lora_nlg/fwd_opt_seed1, 6 steps of lr 2e-4 with 2 warm-up
    steps: the LoRA tensors differ from LoRA's by 2.7e-4 against a total motion of 6.0e-4 with
    torch's rule, by 1.5e-8 with this one -- the float differences of the gradients themselves);
(2) it decays first, ``p = p*(1 - lr*wd)``, and then applies the Adam step to the decayed p.
    The difference per step is lr*wd times the Adam step itself (~lr**2 * wd).

torch AdamW always corrects the bias; ``correct_bias: false`` (BERT's TF optimizer) exists only for
``lora_adamw``, and ``build_optimizer`` refuses it with ``adamw``. State (``step`` as an int,
``exp_avg``, ``exp_avg_sq``) round-trips through ``state_dict`` like any torch optimizer, so the
trainer's checkpoints resume it bit-for-bit (tests/test_optim.py).

The element-wise operations are done in LoRA's order with the same fused torch calls, so that
given the same gradients the float32 rounding is LoRA's too; ``python -m lodabench.reference check``
compares the parameters after every step with LoRA's (tolerance 1e-6; measured 1.5e-8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from lodabench.errors import ConfigError

OPTIMIZERS = ("lora_adamw", "lora_adamw_loop", "adamw")

# Optimizers whose states are interchangeable (same rule, same state_dict layout): a checkpoint of one
# resumes under the other (trainer._check_optimizer_name).
STATE_FAMILY = {"lora_adamw_loop": "lora_adamw"}


class LoRAAdamW(torch.optim.Optimizer):
    """microsoft/LoRA's AdamW update rule (module docstring); one ``step`` = one update of every
    parameter with a gradient. Sparse gradients are refused, as in LoRA."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, correct_bias: bool = True):
        _check_hyperparameters(lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "correct_bias": bool(correct_bias)}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _moments(self, param: torch.Tensor) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    def _update(self, param: torch.Tensor, group: Mapping[str, Any]) -> None:
        grad = param.grad
        if grad.is_sparse:
            raise RuntimeError("lora_adamw does not support sparse gradients")
        state = self._moments(param)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        first, second = state["exp_avg"], state["exp_avg_sq"]
        first.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        second.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = second.sqrt().add_(group["eps"])  # (1): eps on the UNcorrected sqrt(v)
        param.addcdiv_(first, denom, value=-_step_size(group, state["step"]))
        if group["weight_decay"] > 0.0:  # (2): decoupled decay of the already-updated p
            param.add_(param, alpha=-group["lr"] * group["weight_decay"])


def _step_size(group: Mapping[str, Any], step: int) -> float:
    """lr, times sqrt(1-b2^t)/(1-b1^t) when correcting the bias (Python floats, as LoRA)."""
    if not group["correct_bias"]:
        return group["lr"]
    beta1, beta2 = group["betas"]
    return group["lr"] * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)


def _check_hyperparameters(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    if lr < 0.0:
        raise ValueError(f"learning rate {lr} must be >= 0")
    if not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas {tuple(betas)} must lie in [0, 1)")
    if eps < 0.0 or weight_decay < 0.0:
        raise ValueError(f"eps {eps} and weight_decay {weight_decay} must be >= 0")


def optimizer_name(cfg: Mapping[str, Any]) -> str:
    """``trainer.optimizer``, validated with ``trainer.correct_bias`` (ConfigError, before training)."""
    from lodabench.config.schema import trainer_config

    cfg = trainer_config(cfg)
    name = cfg.optimizer
    if name not in OPTIMIZERS:
        raise ConfigError(f"trainer.optimizer={name!r} is not one of {', '.join(OPTIMIZERS)} "
                          "(lora_adamw: microsoft/LoRA's AdamW update rule, fused; lora_adamw_loop: the same, "
                          "tensor by tensor; adamw: torch.optim.AdamW). "
                          "See src/lodabench/train/optim.py.")
    if name == "adamw" and not cfg.correct_bias:
        raise ConfigError("trainer.correct_bias=false with trainer.optimizer=adamw: torch.optim.AdamW always "
                          "corrects the bias. Fix: set trainer.optimizer=lora_adamw (LoRA's rule, which "
                          "honours correct_bias) or trainer.correct_bias=true.")
    return name


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer ``trainer.optimizer`` names over ``params``, one parameter group, with
    ``trainer.{lr, adam_beta1, adam_beta2, adam_eps, weight_decay, correct_bias}``."""
    from lodabench.config.schema import trainer_config

    cfg = trainer_config(cfg)
    name = optimizer_name(cfg)
    kwargs = {"lr": cfg.lr, "betas": (cfg.adam_beta1, cfg.adam_beta2), "eps": cfg.adam_eps,
              "weight_decay": cfg.weight_decay}
    if name == "lora_adamw":
        return FusedLoRAAdamW(params, correct_bias=cfg.correct_bias, **kwargs)
    if name == "lora_adamw_loop":
        return LoRAAdamW(params, correct_bias=cfg.correct_bias, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


class FusedLoRAAdamW(LoRAAdamW):
    """``trainer.optimizer=lora_adamw``: ``LoRAAdamW``'s rule, each parameter group updated at once;
    same arguments, same results, same state_dict.

    The per-tensor ``LoRAAdamW`` (kept unchanged as ``lora_adamw_loop``) runs about seven small kernels
    per tensor; GPT-2 M LoRA (r=4 on q,v, 24 layers) has 96 tensors, so on a GPU the step is launch-bound
    and on a CPU it is dispatch-bound (issue #30: 2.0 ms per step on CPU). Here a group's parameters,
    first and second moments live in three flat buffers, and each parameter (``param.data``) and each
    state tensor (``exp_avg``, ``exp_avg_sq``) is a view into its buffer; one step gathers the gradients
    with one ``torch.cat`` and runs LoRA's seven operations once on the buffers.

    Why it is bit-identical to the loop: every operation is element-wise and is applied in LoRA's order
    with the same torch calls and the same Python-float scalars, so each element sees exactly the loop's
    float32 arithmetic (checked on tensors of odd sizes and on the reference goldens; tests/test_optim_fused.py).

    Why old checkpoints load: ``state_dict`` has the loop's layout (per parameter ``step`` as an int,
    ``exp_avg``, ``exp_avg_sq``; views are saved as ordinary tensors), and ``load_state_dict`` leaves
    the loaded tensors in place; the next step copies them into fresh buffers. So a state written by
    ``lora_adamw_loop`` (or by this class before #30) continues identically, and vice versa.

    When a group cannot be fused -- a parameter without a gradient this step (the loop skips it and
    does not count its step), sparse gradients, mixed devices/dtypes, or parameters whose step counts
    differ -- that group takes the loop's per-tensor path for the step, which gives the loop's result.
    If something replaces a parameter's storage (``model.to(...)``, ``param.data = ...``), the views
    are found stale by their data pointers and the buffers are rebuilt from the current values.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._flat: dict[int, dict[str, Any]] = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            if not self._fused_step(index, group):
                for param in group["params"]:
                    if param.grad is not None:
                        self._update(param, group)
        return loss

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._flat = {}  # the loaded tensors are not our views: rebuilt (copied) at the next step

    # ----------------------------------------------------------------------------- internals
    def _fusable(self, params: list[torch.Tensor]) -> bool:
        """Every parameter has a dense gradient, one device and dtype, and the same step count."""
        if not params or any(p.grad is None or p.grad.is_sparse for p in params):
            return False
        first = params[0]
        if any(p.device != first.device or p.dtype != first.dtype or p.grad.dtype != p.dtype for p in params):
            return False
        return len({self.state[p].get("step", 0) for p in params}) == 1

    def _fused_step(self, index: int, group: Mapping[str, Any]) -> bool:
        params = list(group["params"])
        if not self._fusable(params):
            return False
        flat = self._buffers(index, params)
        grad = torch.cat([p.grad.reshape(-1) for p in params])
        for p in params:
            self.state[p]["step"] += 1
        beta1, beta2 = group["betas"]
        first, second, values = flat["exp_avg"], flat["exp_avg_sq"], flat["param"]
        # LoRAAdamW._update's operations, in its order, on the whole group at once
        first.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        second.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = second.sqrt().add_(group["eps"])
        values.addcdiv_(first, denom, value=-_step_size(group, self.state[params[0]]["step"]))
        if group["weight_decay"] > 0.0:
            values.add_(values, alpha=-group["lr"] * group["weight_decay"])
        return True

    def _buffers(self, index: int, params: list[torch.Tensor]) -> dict[str, Any]:
        flat = self._flat.get(index)
        if flat is None or not self._views_intact(flat, params):
            flat = self._flat[index] = self._flatten(params)
        return flat

    def _views_intact(self, flat: Mapping[str, torch.Tensor], params: list[torch.Tensor]) -> bool:
        """Each parameter and moment still points at its slot (a replaced storage is caught here)."""
        if len(params) != len(flat["pointers"]):
            return False
        for p, expected in zip(params, flat["pointers"]):
            state = self.state[p]
            if "exp_avg" not in state or "exp_avg_sq" not in state:  # state cleared by hand
                return False
            if (p.data_ptr(), state["exp_avg"].data_ptr(), state["exp_avg_sq"].data_ptr()) != expected:
                return False
        return True

    def _flatten(self, params: list[torch.Tensor]) -> dict[str, Any]:
        """Three buffers holding the current values; parameters and moments become views of them
        (``pointers``: each one's (param, exp_avg, exp_avg_sq) data pointers, for ``_views_intact``)."""
        sizes = [p.numel() for p in params]
        total, like = sum(sizes), params[0]
        flat = {key: torch.empty(total, dtype=like.dtype, device=like.device)
                for key in ("param", "exp_avg", "exp_avg_sq")}
        pointers, offset = [], 0
        for p, n in zip(params, sizes):
            state = self.state[p]
            if not state:
                state["step"] = 0
            for key in ("exp_avg", "exp_avg_sq"):
                view = flat[key][offset:offset + n].view(p.shape)
                view.copy_(state[key]) if key in state else view.zero_()
                state[key] = view
            view = flat["param"][offset:offset + n].view(p.shape)
            view.copy_(p.data)
            p.data = view
            pointers.append((p.data_ptr(), state["exp_avg"].data_ptr(), state["exp_avg_sq"].data_ptr()))
            offset += n
        return {**flat, "pointers": pointers}
