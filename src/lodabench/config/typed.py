"""Typed configs from YAML/command-line values: the checks every config group shares.

A config group (``method``, ``data``) is a dataclass per choice; ``build_config`` turns the plain
values Hydra composed into an instance, refusing an unknown key or a value of the wrong type with
an error that names ``<group>.<key>``, the value and the fix. The range/choice checks that depend
on the meaning of a value stay in each dataclass's ``validate``. Kept free of torch so data configs
can use it without importing the model code.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from lodabench.errors import ConfigError


def hp(default: Any, help: str, domain: Any = None) -> Any:
    """A config field with its help text (shown in errors and docs) and, for a number, its domain
    (``lodabench.config.ranges.rng("[0, 1)")``: checked before anything loads, see lodabench.config.ranges)."""
    metadata = {"help": help} if domain is None else {"help": help, "domain": domain}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def plain_values(cfg: Any, group: str) -> dict[str, Any]:
    """A plain dict of a DictConfig, dataclass instance or mapping (what a config group arrives as)."""
    try:  # Hydra/OmegaConf configs
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{group} config must be a mapping with a 'name' key, got {type(cfg).__name__}")
    return dict(cfg)


def _optional_of(expected: Any) -> Any:
    """``X`` for an annotation ``Optional[X]``, else None (only None-default fields use it)."""
    args = [a for a in typing.get_args(expected) if a is not type(None)]
    if typing.get_origin(expected) is typing.Union and len(args) == 1:
        return args[0]
    return None


def _probe(default: Any, expected: Any) -> Any:
    """A value whose type the field wants: the default, or for ``Optional[X] = None`` an empty X."""
    if default is not None:
        return default
    inner = _optional_of(expected)
    origin = typing.get_origin(inner) or inner
    return origin() if origin in (bool, int, float, str, list) else None


def _converted(value: Any, probe: Any) -> tuple[bool, Any]:
    """(whether ``value`` fits the type of ``probe``, the value converted to it)."""
    if isinstance(probe, bool):
        return isinstance(value, bool), value
    if isinstance(probe, int):
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(probe, float):  # YAML writes 1.0 as 1: an int is a float here
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if isinstance(probe, (tuple, list)):  # a YAML list (a ListConfig made plain): the default's kind
        ok = isinstance(value, (list, tuple))
        return ok, type(probe)(value) if ok else value
    if isinstance(probe, str):
        return isinstance(value, str), value
    return True, value


def coerce_field(group: str, key: str, value: Any, default: Any, expected: Any = None) -> Any:
    """Bring a YAML/CLI value to the type of the field's default, or raise naming ``<group>.<key>``.

    ``expected`` (the field's annotation) matters only for a None default: ``Optional[int] = None``
    accepts null or an int. A field whose default is None and whose annotation says nothing more
    takes any value, as before typed configs.
    """
    probe = _probe(default, expected)
    if value is None and default is None:
        return None
    ok, out = _converted(value, probe)
    if not ok:
        kind = type(probe).__name__ + (" or null" if default is None else "")
        raise ConfigError(f"{group}.{key}={value!r} has the wrong type: expected {kind} "
                          f"(default {default!r}). Fix: set {group}.{key} to a {kind}")
    return out


def field_defaults(config: Any) -> dict[str, Any]:
    """Each field's default: the instance's value for a default instance, else the class default."""
    if not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return {f.name: (f.default if f.default is not dataclasses.MISSING
                     else f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                     else None) for f in dataclasses.fields(config)}


def _annotations(cls: type) -> dict[str, Any]:
    """The resolved field annotations (``from __future__ import annotations`` makes them strings)."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation naming what the module cannot resolve: no hints
        return {}


def build_config(config: Any, values: Any, group: str) -> Any:
    """The dataclass instance of ``config`` (a class, or a default instance) with ``values`` set.

    For values given in code (``apply_method(model, {"name": "lora", "r": 8})``, a plugin's
    ``register_method_config``, a model YAML read alone, a reference case's decoding settings); a
    run's composed config is its dataclasses already (Hydra's nodes are the config classes, and
    run.preflight's ``run_config`` is ``OmegaConf.to_object``), and its instances pass through here
    unchanged. ``values`` is a plain mapping, a composed
    DictConfig, a dataclass instance, or None (all defaults); an instance of the class itself is
    returned as it is (typed once, read many times). Unknown keys and wrong types raise
    ``ConfigError`` naming ``<group>.<key>`` and the valid keys; a key not given keeps its default
    (the default instance's value when an instance is given).
    """
    cls = config if isinstance(config, type) else type(config)
    if type(values) is cls:
        return values
    values = {} if values is None else plain_values(values, group)
    defaults = field_defaults(config)
    unknown = [k for k in values if k not in defaults]
    if unknown:
        of = f"{group}={values['name']}" if "name" in values else group
        raise ConfigError(f"{group}.{unknown[0]} is not a key of {of}. Valid keys: {', '.join(defaults)}")
    hints = _annotations(cls)
    kwargs = {k: coerce_field(group, k, v, defaults[k], hints.get(k)) for k, v in values.items()}
    from lodabench.config.ranges import check_fields

    check_fields(cls, kwargs, f"{group}.")  # each number inside its field's domain (method.dropout=1.5)
    if isinstance(config, type):
        return cls(**kwargs)
    return dataclasses.replace(config, **kwargs)


__all__ = ["build_config", "coerce_field", "field_defaults", "hp", "plain_values"]
