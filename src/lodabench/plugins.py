"""Plugins: methods, tasks and scorers from packages outside lodabench, with no change to it.

A plugin is a Python module that, when imported, calls any of

    lodabench.register_method(SPEC)                       # a MethodSpec (methods/base.py): method=<name>
    lodabench.register_method_config("name", "name.yaml") # optional: values other than the dataclass defaults
    lodabench.register_task(TASK_SPEC)                    # a TaskSpec (data/registry.py): data=<name>
    lodabench.register_scorer(SCORER_SPEC)                # a ScorerSpec (scoring/registry.py): data.scorer=<name>

A method's and a task's config nodes (``method/<name>``, ``data/<name>``) are made from the
registries (schema.store_schema), so neither needs a YAML file of its own.

``load_plugins()`` imports every plugin module named by

- the entry-point group ``lodabench.plugins`` of the installed distributions (as lm-evaluation-
  harness and pytest find theirs): ``[project.entry-points."lodabench.plugins"] x = "pkg.module"``;
- the environment variable ``LODABENCH_PLUGINS=mod1,mod2`` (modules importable from PYTHONPATH).

``python -m lodabench`` calls it (load_plugins_or_exit) before Hydra composes the config (entry.main), so
``method=<name>`` / ``data=<name>`` find the plugin's config; ``methods.get_spec``,
``data.registry.task_spec`` and ``scoring.registry.get_scorer`` call it before reporting an unknown
name, so library use (``lodabench.apply_method(model, "<name>")``, ``get_task``) needs no call either.
Only modules the environment names are imported: nothing in a config selects code to run.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from lodabench.errors import ConfigError

ENTRY_POINT_GROUP = "lodabench.plugins"
ENV_VAR = "LODABENCH_PLUGINS"

_loaded: dict[str, str] = {}  # module name -> where it was named (entry point / env var)


def load_plugins() -> dict[str, str]:
    """Import every plugin module once; returns {module: source} of all loaded so far."""
    for source, module_name in _plugin_modules():
        if module_name not in _loaded:
            _import_plugin(module_name, source)
            _loaded[module_name] = source
    return dict(_loaded)


def load_plugins_or_exit() -> None:
    """load_plugins() for the command line: a broken plugin is one clear line and exit status 2."""
    try:
        load_plugins()
    except ConfigError as exc:
        print(f"lodabench: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _plugin_modules() -> list[tuple[str, str]]:
    found = [(f"entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}, distribution "
              f"{getattr(ep.dist, 'name', '?')})", ep.value.split(":")[0].strip())
             for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    env = os.environ.get(ENV_VAR, "")
    found += [(f"{ENV_VAR}={env}", m.strip()) for m in env.split(",") if m.strip()]
    return found


def _import_plugin(module_name: str, source: str) -> None:
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"plugin module {module_name!r} (from {source}) cannot be imported: {exc}. Fix: "
                          f"install the plugin package, put it on PYTHONPATH, or remove it from {ENV_VAR}") from exc


def register_method_config(name: str, config: str | os.PathLike | Mapping[str, Any]) -> None:
    """Give ``method=<name>`` other values than its config dataclass's defaults (a YAML file or a mapping).

    Optional: ``register_method(spec)`` alone already makes ``method=<name>`` compose to the
    dataclass's defaults (schema.store_schema). The values are validated now, with the same checks
    as any method config (``methods.method_config``: unknown keys, types, ranges), so
    ``register_method(spec)`` must come first; they go on top of the typed node ``method/<name>``.
    """
    from omegaconf import OmegaConf

    from lodabench import methods, schema

    node = OmegaConf.load(Path(config)) if isinstance(config, (str, os.PathLike)) else OmegaConf.create(dict(config))
    if node.get("name") != name:
        raise ConfigError(f"register_method_config({name!r}): the config's name is {node.get('name')!r}. "
                          f"Fix: set `name: {name}` in {config if not isinstance(config, Mapping) else 'the mapping'}")
    methods.method_config(node)
    schema.set_option_values("method", name, node)


__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "load_plugins", "load_plugins_or_exit", "register_method_config"]
