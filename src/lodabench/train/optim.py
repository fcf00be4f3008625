"""The optimizers ``trainer.optimizer`` names: ``lora_adamw`` (LoRA's update rule) and ``adamw`` (torch).

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

OPTIMIZERS = ("lora_adamw", "adamw")


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
                          "(lora_adamw: microsoft/LoRA's AdamW update rule; adamw: torch.optim.AdamW). "
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
        return LoRAAdamW(params, correct_bias=cfg.correct_bias, **kwargs)
    return torch.optim.AdamW(params, **kwargs)
