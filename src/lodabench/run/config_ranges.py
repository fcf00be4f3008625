"""Which domains apply to a run config: its groups (the schema's, decoding, the chosen method's and
task's config classes) walked against their dataclasses' field domains (lodabench.config.ranges).

Kept apart from lodabench.config.ranges, which the config dataclasses themselves import: this module reads
the registries, so it sits above them (preflight and run.run call it; the registries never do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lodabench import methods

from lodabench.config import schema
from lodabench.tasks import registry
from lodabench.tasks.decoding import DecodingConfig
from lodabench.config.ranges import check_fields


def config_groups(cfg: Any) -> list[tuple[str, type, Any]]:
    """(key prefix, dataclass, values) of each group of a run config: the schema's own groups, the
    decoding config, and the chosen method's and task's config classes (plugins' included)."""
    groups: list[tuple[str, type, Any]] = [("", schema.RunConfig, cfg)]
    for key, cls in (("trainer", schema.TrainerConfig), ("selection", schema.SelectionConfig),
                     ("search", schema.SearchConfig), ("model", schema.ModelConfig), ("decoding", DecodingConfig)):
        groups.append((f"{key}.", cls, _group(cfg, key)))
    for key, find in (("method", _method_class), ("data", _data_class)):
        node = _group(cfg, key)
        if node is not None and isinstance(node.get("name"), str):
            groups.append((f"{key}.", find(node["name"]), node))
    return [(p, c, v) for p, c, v in groups if v is not None]


def _group(cfg: Any, key: str) -> Any:
    try:
        node = cfg.get(key)
    except Exception:  # noqa: BLE001  (a missing mandatory group: the schema check names it)
        return None
    return node if isinstance(node, Mapping) or hasattr(node, "keys") else None


def _method_class(name: str) -> type:
    return methods.get_spec(name).config_cls


def _data_class(name: str) -> type:
    return type(registry.task_spec(name).config)


def check_config_ranges(cfg: Any) -> None:
    """Every numeric value of the run's config inside its field's domain (ConfigError otherwise)."""
    for prefix, cls, values in config_groups(cfg):
        check_fields(cls, values, prefix)


# What run.run uses before preflight: the thread count (torch.set_num_threads(0) raises) and the seed
# (torch.manual_seed overflows past 2**64).
LAUNCH_KEYS = ("seed", "trainer.num_threads")


def check_launch_values(cfg: Any, keys: tuple[str, ...] = LAUNCH_KEYS) -> None:
    """Check only ``keys`` (full keys of the root or the trainer group), for values a run uses before
    preflight checks the rest. Reads no method or data node: those wait for preflight's typing."""
    for prefix, cls, values in (("", schema.RunConfig, cfg), ("trainer.", schema.TrainerConfig, _group(cfg, "trainer"))):
        names = {k[len(prefix):] for k in keys if k.startswith(prefix) and "." not in k[len(prefix):]}
        if names and values is not None:
            check_fields(cls, values, prefix, only=names)


def registered_config_classes() -> dict[str, type]:
    """Every config dataclass a run can set values of, by label: for the test that each numeric
    field declares a domain."""
    out: dict[str, type] = {"decoding": DecodingConfig}
    for cls in (schema.RunConfig, schema.TrainerConfig, schema.SelectionConfig, schema.PathsConfig,
                schema.LoggerConfig, schema.ModelConfig, schema.SearchConfig):
        out[cls.__name__] = cls
    for name in methods.method_names():
        out[f"method={name}"] = methods.get_spec(name).config_cls
    for name in registry.task_names():
        out[f"data={name}"] = type(registry.task_spec(name).config)
    return out


__all__ = ["LAUNCH_KEYS", "check_config_ranges", "check_launch_values", "config_groups", "registered_config_classes"]
