"""The method library: one config name per method of the papers, and the API the trainer calls.

    cfg  = {"name": "lora", "r": 4, ...}            # the method=<name> node, any Mapping/DictConfig
    conf = method_config(cfg, model)                 # validated dataclass; ConfigError before training
    model = apply_method(model, cfg)                 # freezes the base, injects the method
    ...train...
    sd = trainable_state_dict(model)                 # trainable tensors only
    load_trainable_state_dict(fresh_model_with_method, sd)   # strict, CheckpointError on mismatch
    plain = merge_method(model)                      # mergeable methods only (ConfigError otherwise)
    counts = count_parameters(model)                 # trainable, in 1e6 and 2^20 units, head, total

``METHODS`` is the methods' ``Registry`` (config/registry.py, one class for methods, tasks, scorers
and pipeline kinds); ``REGISTRY`` maps each config name to the module that defines it; modules are
imported lazily (``get_spec``), so a module that does not exist yet only breaks its own names. Every
module exposes ``SPECS: list[MethodSpec]`` (see base.py), and each spec enters the registry through
``register_method(spec)``: the built-in modules' specs when get_spec first imports them, a plugin's
when its module is imported (``lodabench.plugins``: entry points / LODABENCH_PLUGINS, loaded at the doors). Checkpoint files (safetensors + metadata) and
the PEFT export live in ``lodabench.methods.checkpoint``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from lodabench.config.registry import Registry, check_name
from lodabench.config.schema import store_option
from lodabench.config.typed import build_config, plain_values
from lodabench.errors import CheckpointError, ConfigError
from lodabench.methods.base import METHOD_ATTR, MethodSpec, method_of  # noqa: F401  (re-exported: checkpoint.py, prefix.py, the library)
from lodabench.methods import targets
from lodabench.methods.targets import HEAD_NAMES  # noqa: F401  (re-exported: checkpoint.py imports it here)
from lodabench.methods.targets import is_head as _is_head  # checkpoint.py imports it here

# name -> the module that defines it; a built-in module is imported on first use (get_spec), so a module
# that does not exist yet only breaks its own names. A plugin's name is appended as it registers.
BUILTIN_MODULES: dict[str, str] = {
    "ft": "lodabench.methods.full",
    "ft_top2": "lodabench.methods.full",
    "ft_qv": "lodabench.methods.full",
    "bitfit": "lodabench.methods.full",
    "lora": "lodabench.methods.lora",
    "loda": "lodabench.methods.loda",
    "loda_plus": "lodabench.methods.loda",
    "r_loda": "lodabench.methods.approx",
    "r_loda_plus": "lodabench.methods.approx",
    "s_loda": "lodabench.methods.approx",
    "s_loda_plus": "lodabench.methods.approx",
    "condlora": "lodabench.methods.condlora",
    "dora": "lodabench.methods.dora",
    "adapter_h": "lodabench.methods.adapter",
    "adapter_l": "lodabench.methods.adapter",
    "prefix": "lodabench.methods.prefix",
    "prompt": "lodabench.methods.prompt",
}

_BUILTIN = BUILTIN_MODULES  # the old name (tests list the built-ins by it)


def _origin(spec: MethodSpec) -> str:
    return spec.config_cls.__module__  # where the method is defined (apply may be reused)


# register=: through the module attribute, so a wrapped register_method (tests) sees the built-ins enter.
METHODS: Registry[MethodSpec] = Registry(
    "method", attr="SPECS", register=lambda spec: register_method(spec), origin=_origin,
    option=lambda name: f"method={name!r}", lazy=BUILTIN_MODULES, group="method",
    node=lambda spec: store_option("method", spec.name, spec.config_cls))
REGISTRY = METHODS.modules  # name -> module: the built-ins and the registered plugins'


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Make ``spec`` a method: ``method=<spec.name>`` on the command line, ``apply_method`` in code.

    The one way in, for the built-in methods and for plugins alike. The spec is checked here so a
    broken plugin fails at registration, naming the spec, not in the middle of a run: the name
    is a lowercase identifier (it is a config file name and a run-directory part), the config is
    a dataclass whose ``name`` field defaults to that name (method_config dispatches on it) and
    ``apply`` is callable. Registering another spec under a taken name needs ``replace=True``.
    Registering stores ``method/<name>``'s config node (config/registry.py).
    """
    _check_spec(spec)
    return METHODS.register(spec, replace)


def builtin_spec(name: str) -> MethodSpec | None:
    """The built-in spec of ``name`` (None for a plugin's name, or a built-in module not available)."""
    return METHODS.builtin_spec(name)


def unregister_method(name: str) -> None:
    """Remove a method registered by ``register_method`` (tests, interactive sessions); a replaced
    built-in comes back."""
    from lodabench.config.replacements import forget_replaced

    forget_replaced("method_config", name)
    METHODS.remove(name)


def _check_spec(spec: Any) -> None:
    where = f"register_method({getattr(spec, 'name', spec)!r})"
    if not isinstance(spec, MethodSpec):
        raise ConfigError(f"{where}: expected a lodabench.MethodSpec, got {type(spec).__name__}")
    check_name(spec.name, where, "the method=<name> option and a run-directory part")
    if not (isinstance(spec.config_cls, type) and dataclasses.is_dataclass(spec.config_cls)):
        raise ConfigError(f"{where}: config_cls must be a dataclass (see methods/base.py LoRAStyleConfig)")
    name_field = {f.name: f for f in dataclasses.fields(spec.config_cls)}.get("name")
    if name_field is None or name_field.default != spec.name:
        raise ConfigError(f"{where}: {spec.config_cls.__name__} needs a field `name` with default "
                          f"{spec.name!r} (method_config dispatches on it)")
    if not callable(spec.apply) or (spec.merge is not None and not callable(spec.merge)):
        raise ConfigError(f"{where}: apply (and merge, when given) must be callables")


def method_names() -> list[str]:
    """Every method name: the built-ins and the registered plugins'."""
    return METHODS.names()


def get_spec(name: str) -> MethodSpec:
    """The spec of ``method=<name>`` (a plugin's only once its plugin is loaded: the doors do that)."""
    return METHODS.get(name, lambda valid: f"method={name!r} is not a known method. Valid names: "
                       f"{', '.join(valid)}. A method of your own: see docs/extending.md")


def method_config(cfg: Any, model: nn.Module | None = None) -> Any:
    """Validated config dataclass for ``cfg["name"]``; with ``model``, also the model checks."""
    values = cfg if dataclasses.is_dataclass(cfg) else plain_values(cfg, "method")
    name = getattr(values, "name", None) if dataclasses.is_dataclass(values) else values.get("name")
    if name is None:
        raise ConfigError(f"method config has no 'name' key. Valid names: {', '.join(REGISTRY)}")
    conf = build_config(get_spec(name).config_cls, values, "method")  # an instance of config_cls is kept as it is
    if hasattr(conf, "validate"):
        conf.validate()  # the values, once (check_model: against the model, at apply)
    if model is not None:
        check_model(conf, model)
    return conf


def check_model(conf: Any, model: nn.Module) -> None:
    """A validated method config against the built model (``MethodSpec.check_model`` of its spec)."""
    get_spec(conf.name).check_model(conf, model)


def apply_method(model: nn.Module, cfg: Any) -> nn.Module:
    """Freeze the base, inject the method (validated first) and return the model to train."""
    return apply_config(model, method_config(cfg))


def apply_config(model: nn.Module, conf: Any) -> nn.Module:
    """``apply_method`` for a config whose values are validated already: ``MethodSpec.attach`` of its spec
    (what a run does with preflight's ``Plan.method``)."""
    return get_spec(conf.name).attach(model, conf)


def merge_method(model: nn.Module) -> nn.Module:
    info = method_of(model)
    if info is None:
        raise ConfigError("merge_method: this model has no method applied (call apply_method first)")
    spec = get_spec(info["name"])
    if spec.merge is None:
        raise ConfigError(
            f"method={info['name']} cannot be merged into the base weights (its update is not linear "
            "in the weights, or not a weight update). Fix: evaluate the unmerged model."
        )
    merged = spec.merge(model)
    if hasattr(merged, METHOD_ATTR):
        try:
            delattr(merged, METHOD_ATTR)
        except AttributeError:  # pragma: no cover
            pass
    return merged


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors only (each shared tensor once), keyed by parameter name."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """Best guess of the method/rank that produced a trainable state dict (for error messages).

    Each method says whether the state dict looks like its own (``MethodSpec.describe``); they are
    asked in ``method_names()`` order (the built-ins, then plugins in registration order) and the
    first answer wins. The built-ins' answers exclude each other (tests/test_methods_describe.py),
    so only a plugin's order relative to them can matter, and built-ins come first.
    """
    keys = list(sd)
    if not keys:
        return "an empty state dict"
    for describe in _describers():
        text = describe(sd)
        if text is not None:
            return text
    return f"{len(keys)} tensors, e.g. {keys[0]!r}"


def _describers() -> list:
    """Each distinct ``describe`` of the registered methods, in ``method_names()`` order; a method
    whose module cannot be imported is skipped (its name already fails with get_spec's message)."""
    out = []
    for name in method_names():
        try:
            describe = get_spec(name).describe
        except ConfigError:
            continue
        if describe is not None and describe not in out:
            out.append(describe)
    return out


def _describe_model(model: nn.Module) -> str:
    info = method_of(model)
    if info is None:
        return "a model with no method applied"
    cfg = info["config"]
    extra = ", ".join(f"{k}={cfg[k]}" for k in ("r", "rank", "keep", "targets") if k in cfg)
    return f"method={info['name']}" + (f" ({extra})" if extra else "")


@torch.no_grad()
def load_trainable_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Strict load of trainable tensors; any missing/unexpected key or shape mismatch raises."""
    expected = trainable_state_dict(model)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            k = mismatched[0]
            parts.append(f"{len(mismatched)} with other shapes (e.g. {k}: checkpoint "
                         f"{tuple(sd[k].shape)} vs model {tuple(expected[k].shape)})")
        raise CheckpointError(
            f"checkpoint does not fit the model: {'; '.join(parts)}. The checkpoint looks like "
            f"{describe_state_dict(sd)}; the model has {_describe_model(model)}. Fix: load it into a "
            "model built with the same method config (method name, r/rank, targets)."
        )
    params = dict(model.named_parameters())
    for k, v in sd.items():
        params[k].copy_(v.to(device=params[k].device, dtype=params[k].dtype))


def count_parameters(model: nn.Module) -> dict[str, Any]:
    """Trainable counts (raw, 1e6, 2^20 as the LoDA/LoRA papers print them), head, total."""
    trainable = head = total = 0
    for name, p in model.named_parameters():
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
            if _is_head(name):
                head += n
    without = trainable - head
    return {
        "trainable": trainable,
        "trainable_M": trainable / 1e6,
        "trainable_Mi": trainable / 2**20,
        "trainable_without_head": without,
        "trainable_without_head_M": without / 1e6,
        "trainable_without_head_Mi": without / 2**20,
        "head": head,
        "total": total,
        # The LoDA paper's style: 393,216 -> 0.375 (2^20 units) -> "0.38M".
        "paper": f"{without / 2**20:.2f}M",
    }


__all__ = [
    "METHODS",
    "REGISTRY",
    "MethodSpec",
    "register_method",
    "unregister_method",
    "method_names",
    "get_spec",
    "method_config",
    "apply_method",
    "apply_config",
    "check_model",
    "merge_method",
    "method_of",
    "trainable_state_dict",
    "load_trainable_state_dict",
    "describe_state_dict",
    "count_parameters",
]
