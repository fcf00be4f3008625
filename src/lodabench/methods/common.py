"""Shared pieces of the method configs: field helper, validation helpers, the LoRA-style base.

Every method config is a dataclass; ``validate()`` checks what can be checked from the values alone
(preflight runs it once, before anything loads) and ``check_model(model)`` what depends on the
model's shapes and family (apply_method runs it once the model is built). ``validate(model)`` still
runs both, for callers of the old one-call contract. Errors name the key as it is written on the
command line (``method.r=0``) and say how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn

from lodabench.errors import ConfigError
from lodabench.methods import targets
from lodabench.config.ranges import DOMAIN, rng  # noqa: F401  (re-exported: method configs and plugins import them here)
from lodabench.config.typed import hp  # noqa: F401  (re-exported: method configs and plugins import it here)


def fail(key: str, value: Any, why: str, fix: str) -> ConfigError:
    return ConfigError(f"method.{key}={value!r}: {why}. Fix: {fix}")


def check_positive_int(cfg: Any, key: str) -> None:
    v = getattr(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise fail(key, v, "must be a positive integer", f"set method.{key} to an integer >= 1")


def check_fraction(cfg: Any, key: str, *, low_inclusive: bool, high_inclusive: bool) -> None:
    v = getattr(cfg, key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v >= 0 if low_inclusive else v > 0) and (v <= 1 if high_inclusive else v < 1)
    if not ok:
        lo, hi = ("[" if low_inclusive else "("), ("]" if high_inclusive else ")")
        raise fail(key, v, f"must lie in {lo}0, 1{hi}", f"set method.{key} to a value in {lo}0, 1{hi}")


def check_targets(cfg: Any) -> None:
    t = cfg.targets
    if not t or any(n not in ("q", "k", "v") for n in t) or len(set(t)) != len(t):
        raise fail("targets", list(t), "must be a non-empty subset of [q, k, v] without repeats",
                   "use e.g. method.targets=[q,v]")


def check_family(cfg: Any, model: nn.Module, families: tuple[str, ...]) -> str:
    fam = targets.family(model)
    if fam not in families:
        raise ConfigError(
            f"method={cfg.name} does not apply to model family {fam!r} (it applies to "
            f"{', '.join(families)}). Fix: pick another method or model."
        )
    return fam


def check_rank_fits(cfg: Any, model: nn.Module, key: str = "r") -> None:
    """r must not exceed min(in, out) of any adapted projection slice."""
    r = getattr(cfg, key)
    for n in cfg.targets:
        p = targets.projections(model, 0)[n]
        limit = min(p.in_features, p.out_features)
        if r > limit:
            raise fail(key, r, f"exceeds the {n} projection's dimension min(in={p.in_features}, "
                       f"out={p.out_features})={limit}", f"set method.{key} <= {limit}")


def and_model(cfg: Any, model: nn.Module | None) -> None:
    """``validate(model)``'s second half: the model checks, when a model is given."""
    if model is not None:
        cfg.check_model(model)


def check_choice(cfg: Any, key: str, choices: tuple[str, ...]) -> None:
    v = getattr(cfg, key)
    if v not in choices:
        raise fail(key, v, f"is not one of {list(choices)}", f"set method.{key} to one of {list(choices)}")


@dataclass
class LoRAStyleConfig:
    """Hyperparameters shared by every method built on a rank-r update of q/k/v."""

    name: str = hp("lora", "config name of the method")
    r: int = hp(4, "rank of the update (LoRA paper Table 11: r=4 for GPT-2 E2E)", rng("[1, inf)"))
    alpha: float = hp(32.0, "scaling numerator: the update is multiplied by alpha/r", rng("(0, inf)"))
    dropout: float = hp(0.1, "dropout on the adapter input", rng("[0, 1)"))
    targets: tuple = hp(("q", "v"), "which of q, k, v get an update")
    train_head: bool = hp(True, "keep a classification head (classifier/score) trainable")

    families = ("gpt2", "bert", "roberta", "llama")

    @property
    def scaling(self) -> float:
        return float(self.alpha) / self.r

    def validate(self, model: nn.Module | None = None) -> None:
        """The values alone; with ``model``, ``check_model`` too (the old one-call contract)."""
        check_positive_int(self, "r")
        check_fraction(self, "dropout", low_inclusive=True, high_inclusive=False)
        check_targets(self)
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or self.alpha <= 0:
            raise fail("alpha", self.alpha, "must be a positive number", "set method.alpha > 0")
        and_model(self, model)

    def check_model(self, model: nn.Module) -> None:
        """What depends on the built model: its family and the projections' sizes (values validated)."""
        check_family(self, model, self.families)
        check_rank_fits(self, model)


def config_keys(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


# ----------------------------------------------------------------- describing a trainable state dict
def method_keys(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """The keys of a trainable state dict that are not the task head's (a head trains with most methods)."""
    return [k for k in sd if not targets.is_head(k)]


def low_rank_text(kind: str, sd: Mapping[str, torch.Tensor]) -> str:
    """'<kind> with r=<r> on <slots> (<n> tensors)' for a state dict holding ``lora_A`` factors (r, in)."""
    factors = [k for k in sd if k.endswith("lora_A")]
    slots = sorted({k.split(".adapters.")[1].split(".")[0] for k in factors if ".adapters." in k})
    return f"{kind} with r={sd[factors[0]].shape[0]} on {slots or 'some projections'} ({len(sd)} tensors)"
