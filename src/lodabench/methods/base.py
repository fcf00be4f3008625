"""What a method is: the contract every method module follows, the config pieces they share, and
how a config goes onto a model -- so the registry, the run and ``apply_method`` treat them alike.

A method module defines a config dataclass (fields with help text and a domain, ``hp(...)``; a
``validate()`` for the values and a ``check_model(model)`` for what needs the built model, each
raising ConfigError naming the key as it is written on the command line (``method.r=0``), the value
and the fix) and one or more ``MethodSpec`` entries in a module-level ``SPECS`` list. Preflight runs
``validate()`` once, before anything loads; ``MethodSpec.attach(model, config)`` runs the model
checks, freezes the base, calls the method's ``apply`` (inject the method; the forward stays "base
output + adapter delta") and keeps a head trainable. ``validate(model)`` still runs both checks,
for callers of the old one-call contract.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch
import torch.nn as nn

from lodabench.config.ranges import DOMAIN, rng  # noqa: F401  (re-exported: method configs and plugins import them here)
from lodabench.config.typed import hp  # noqa: F401  (re-exported: method configs and plugins import it here)
from lodabench.errors import ConfigError
from lodabench.methods import targets

# Attribute set on the model a method was attached to: {"name": ..., "config": {...}} (method_of).
METHOD_ATTR = "lodabench_method"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type
    apply: Callable[[nn.Module, Any], nn.Module]
    # None = the update is not linear in the weights (or is not a weight update): merge() says so.
    merge: Callable[[nn.Module], nn.Module] | None = None
    # The method's step between training and evaluation, (model, run_dir) -> model to evaluate;
    # None: nothing (prefix with the MLP projection merges it and saves the merged prefix).
    after_training: Callable[[nn.Module, Any], nn.Module] | None = None
    # Model families the method applies to: gpt2 (fused c_attn Conv1D), bert/roberta (query/key/value
    # Linear), llama (q_proj/k_proj/v_proj Linear).
    families: tuple[str, ...] = ("gpt2", "bert", "roberta", "llama")
    description: str = field(default="")
    # For error messages about a checkpoint: a short text ("lora with r=4 on ['q', 'v'] ...") when a
    # trainable state dict looks like this method's, else None (methods.describe_state_dict asks each spec).
    describe: Callable[[Mapping[str, torch.Tensor]], str | None] | None = None
    # How the results tables name the method: Markdown/CSV and LaTeX (the papers' row labels, e.g.
    # LoDA Table 1's "Adapter^H"); "" = the name (LaTeX: the Markdown label, escaped).
    label: str = ""
    tex_label: str = ""

    def attach(self, model: nn.Module, config: Any) -> nn.Module:
        """This method, with ``config``'s values validated already (preflight's ``Plan.method``), on a
        built model: the model checks, the base frozen, ``apply``, a head kept trainable and the
        config noted on the model (``method_of``). Nothing is typed or validated again."""
        self.check_model(config, model)
        if method_of(model) is not None:
            raise ConfigError(f"apply_method(method={config.name}): the model already has method="
                              f"{method_of(model)['name']} applied. Fix: build a fresh base model first")
        for p in model.parameters():
            p.requires_grad_(False)
        model = self.apply(model, config)
        if getattr(config, "train_head", True):
            for name, p in model.named_parameters():
                if targets.is_head(name):
                    p.requires_grad_(True)
        setattr(model, METHOD_ATTR, {"name": config.name, "config": _config_dict(config)})
        return model

    def check_model(self, config: Any, model: nn.Module) -> None:
        """A validated config against the built model: its family, then the config's ``check_model``.

        An older plugin config has only ``validate(model=None)``, values and model in one call: it is
        called with the model here (so its values are checked a second time), with a DeprecationWarning."""
        fam = targets.family(model)
        if fam not in self.families:
            raise ConfigError(f"method={self.name} does not apply to model family {fam!r} "
                              f"(it applies to {', '.join(self.families)}). Fix: pick another method or model.")
        if hasattr(config, "check_model"):
            config.check_model(model)
        elif _takes_model(config):
            warnings.warn(f"{type(config).__name__}.validate(model): split it into validate() (the values, checked "
                          "before anything loads) and check_model(model) (what needs the model); see "
                          "docs/extending.md", DeprecationWarning, stacklevel=3)
            config.validate(model)


def method_of(model: nn.Module) -> dict[str, Any] | None:
    """{"name", "config"} noted by ``MethodSpec.attach``, or None for a model without a method."""
    return getattr(model, METHOD_ATTR, None)


def _takes_model(config: Any) -> bool:
    """Whether ``config.validate`` takes a model (the contract before ``check_model``)."""
    validate = getattr(config, "validate", None)
    return validate is not None and bool(inspect.signature(validate).parameters)


def _config_dict(config: Any) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ----------------------------------------------------------------- the config pieces methods share
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
