"""Which domains apply to a run config: the values run.run uses before preflight (``check_launch_values``),
the whole typed config (``check_config_ranges``, as preflight checks it), and every config class a run
can set (``registered_config_classes``, for the test that each numeric field declares a domain).

Kept apart from lodabench.config.ranges, which the config dataclasses themselves import: this module reads
the registries, so it sits above them (run.run calls it; the registries never do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lodabench import methods

from lodabench.config import schema
from lodabench.tasks import registry
from lodabench.tasks.decoding import DecodingConfig
from lodabench.config.ranges import check_fields, check_tree


def _group(cfg: Any, key: str) -> Any:
    try:
        node = cfg.get(key)
    except Exception:  # noqa: BLE001  (a missing mandatory group: the schema check names it)
        return None
    return node if isinstance(node, Mapping) or hasattr(node, "keys") else None


def check_config_ranges(cfg: Any) -> None:
    """Every numeric value of the run's config inside its field's domain (ConfigError otherwise): the
    check preflight makes, on the config typed as preflight types it (its groups' own dataclasses)."""
    from lodabench.run.preflight import run_config

    check_tree(run_config(cfg))


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


__all__ = ["LAUNCH_KEYS", "check_config_ranges", "check_launch_values", "registered_config_classes"]
