"""The one typing path: every config group becomes its dataclass through OmegaConf's structured nodes.

A run's composed config is typed by Hydra's merge onto the groups' own dataclasses and
``to_object`` (run.preflight.run_config); values given in code (``apply_method(model, {"name":
"lora", "r": 8})``, a plugin's ``register_method_config``, a model YAML read alone, the reference
checker's decoding settings, ``selection_config``) go the same way in ``build_config``: the class's
structured node, the values merged onto it, ``to_object``. So a value is converted by the same
rules wherever it comes from (OmegaConf's: ``"8"`` for an int field is 8, ``1`` for a float is
1.0, ``True`` for an int is refused) and its errors are worded once: an unknown key names the valid
keys, a value that does not convert names ``<group>.<key>``, the value, the expected type and the
fix (``type_message``; any other OmegaConf error: ``omegaconf_message``). The range/choice checks
that depend on the meaning of a value stay in the field's domain (config/ranges.py) and each
dataclass's ``validate``. Kept free of torch so data configs can use it without the model code.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

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
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{group} config must be a mapping with a 'name' key, got {type(cfg).__name__}")
    return dict(cfg)


# ------------------------------------------------------------------- a dataclass as an OmegaConf node
def node_source(key: str, cls: type, defaults: dict[str, Any] | None) -> Any:
    """``cls`` when OmegaConf can merge into it as it is (with other defaults than the class's own, a
    task's ``name``: the instance ``cls(**defaults)``), else its ``mirror`` named ``key``.

    A mirror is needed only for a frozen dataclass (a merge writes into the node), one with a
    ``__post_init__`` (its checks belong to ``validate``, not to every merge), or annotations
    OmegaConf cannot type: ``OmegaConf.to_object`` of such a node is not ``cls``."""
    return _node(key, cls, defaults)[0]


def _node(key: str, cls: type, defaults: dict[str, Any] | None) -> tuple[Any, DictConfig]:
    """(``node_source``, its OmegaConf node): the node that decided the source is the one returned."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and not params.frozen and not hasattr(cls, "__post_init__"):
        try:
            source = cls(**defaults) if defaults else cls
            return source, OmegaConf.structured(source)
        except Exception:  # noqa: BLE001  (OmegaConf's many validation errors: the mirror types it)
            pass
    source = mirror(cls, defaults)
    source.__name__ = source.__qualname__ = key
    return source, OmegaConf.structured(source)


def mirror(cls: type, defaults: dict[str, Any] | None = None) -> type:
    """A plain (unfrozen, method-free) dataclass with ``cls``'s fields, types and defaults.

    Why: a merge writes into the node, which a frozen dataclass forbids, and a config class's
    __post_init__ checks belong to preflight, not to every merge step. The defaults stay those of
    ``cls`` (one place); ``defaults`` replaces some (a task's ``name``).
    """
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    specs = []
    for f in dataclasses.fields(cls):
        default = defaults.get(f.name, f.default)
        if f.name in defaults or f.default is not dataclasses.MISSING:
            value = list(default) if isinstance(default, tuple) else default
            spec = _factory_field(value, f.metadata) if isinstance(value, (list, dict)) else \
                field(default=value, metadata=f.metadata)
        else:
            spec = field(default_factory=f.default_factory, metadata=f.metadata)  # type: ignore[arg-type]
        specs.append((f.name, _omegaconf_type(hints[f.name]), spec))
    return dataclasses.make_dataclass(cls.__name__, specs)


def _factory_field(value: Any, metadata: Any) -> Any:
    """A list/dict default (a fresh copy per instance) keeping all of the field's metadata (help, domain)."""
    return field(default_factory=lambda: type(value)(value), metadata=metadata)


def _omegaconf_type(tp: Any) -> Any:
    """tuple fields (immutable defaults in code) are lists in a config."""
    if tp is tuple or typing.get_origin(tp) is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return list[args[0]] if args else list[Any]
    return tp


def with_tuples(config: Any) -> Any:
    """OmegaConf holds a tuple field (``method.targets``, ``decoding.extra_eos``) as a list: each such
    field of the tree gets its declared tuple back."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            with_tuples(value)
        elif isinstance(value, list) and isinstance(f.default, tuple):
            setattr(config, f.name, tuple(value))
    return config


# ------------------------------------------------------------------------------ the errors, worded once
def omegaconf_message(exc: Exception) -> str:
    """One line naming the key for an OmegaConf error (a missing value, an interpolation, a type)."""
    key = getattr(exc, "full_key", None) or "the config"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if type(exc).__name__ == "MissingMandatoryValue":
        return f"{key} has no value (???). Fix: set {key}=... on the command line or in the model/overlay YAML"
    return f"{key}: {first}. Fix: correct {key} (see src/lodabench/config/schema.py)"


def type_message(group: str, key: str, value: Any, kind: str, default: Any) -> str:
    """A value that does not convert to its field's type: group, key, value, the expected type, the fix."""
    return (f"{group}.{key}={value!r} has the wrong type: expected {kind} (default {default!r}). "
            f"Fix: set {group}.{key} to a {kind}")


def _expected(config: Any, key: str) -> tuple[str, Any]:
    """(the type ``type_message`` names, the field's default): the default's type, or for
    ``Optional[X] = None`` "X or null"."""
    f = {f.name: f for f in dataclasses.fields(config)}[key]
    if not isinstance(config, type):
        default = getattr(config, key)
    elif f.default is not dataclasses.MISSING:
        default = f.default
    else:
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
    if default is not None:
        return type(default).__name__, default
    args = [a for a in typing.get_args(_hints(config).get(key)) if a is not type(None)]
    inner = typing.get_origin(args[0]) or args[0] if len(args) == 1 else None
    return f"{getattr(inner, '__name__', 'value')} or null", None


def _hints(config: Any) -> dict[str, Any]:
    cls = config if isinstance(config, type) else type(config)
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation naming what the module cannot resolve: no hints
        return {}


# ------------------------------------------------------------------------------ values given in code
def build_config(config: Any, values: Any, group: str) -> Any:
    """The dataclass instance of ``config`` (a class, or a default instance) with ``values`` set.

    ``values`` is a plain mapping, a composed DictConfig, a dataclass instance, or None (all
    defaults); an instance of the class itself is returned as it is (typed once, read many times).
    A key not given keeps its default (the default instance's value when an instance is given).
    """
    cls = config if isinstance(config, type) else type(config)
    if type(values) is cls:
        return values
    values = {} if values is None else plain_values(values, group)
    _refuse_unknown(config, values, group)
    merged = _merged(config, values, group)
    from lodabench.config.ranges import check_fields

    converted = OmegaConf.to_container(merged, resolve=True)
    check_fields(cls, {k: converted[k] for k in values}, f"{group}.")  # each number inside its field's domain
    return _instance(cls, merged)


def _refuse_unknown(config: Any, values: Mapping[str, Any], group: str) -> None:
    keys = [f.name for f in dataclasses.fields(config)]
    unknown = [k for k in values if k not in keys]
    if unknown:
        of = f"{group}={values['name']}" if "name" in values else group
        raise ConfigError(f"{group}.{unknown[0]} is not a key of {of}. Valid keys: {', '.join(keys)}")


def _merged(config: Any, values: Mapping[str, Any], group: str) -> Any:
    """The values merged onto the class's node (OmegaConf converts them), as a DictConfig."""
    cls = config if isinstance(config, type) else type(config)
    instance_values = None if isinstance(config, type) else {f.name: getattr(config, f.name)
                                                              for f in dataclasses.fields(config)}
    try:
        return OmegaConf.merge(_node(cls.__name__, cls, instance_values)[1], values)
    except ValidationError as exc:
        key = str(getattr(exc, "key", "") or "")
        if key in values:
            raise ConfigError(type_message(group, key, values[key], *_expected(config, key))) from None
        raise ConfigError(f"{group}.{omegaconf_message(exc)}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{group}.{omegaconf_message(exc)}") from None


def _instance(cls: type, merged: Any) -> Any:
    """``cls`` itself from the merged node: ``to_object`` where the node is the class and every field
    has a value, else the class built from the converted values (a mirror's: frozen, ``__post_init__``;
    a field left ``???``, ``model.name`` of a description read alone, keeps that text as before)."""
    if not any(OmegaConf.is_missing(merged, k) for k in merged):
        obj = OmegaConf.to_object(merged)
        if type(obj) is cls:
            return with_tuples(obj)
    values = OmegaConf.to_container(merged, resolve=True)
    tuples = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
    return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()})


__all__ = ["build_config", "hp", "mirror", "node_source", "omegaconf_message", "plain_values", "type_message",
           "with_tuples"]
