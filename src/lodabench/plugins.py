"""Plugins: methods, tasks and scorers from packages outside lodabench, with no change to it.

A plugin is a Python module that, when imported, calls any of

    lodabench.register_method(SPEC)                       # a MethodSpec (methods/base.py): method=<name>
    lodabench.register_method_config("name", "name.yaml") # optional: values other than the dataclass defaults
    lodabench.register_task(TASK_SPEC)                    # a TaskSpec (data/registry.py): data=<name>
    lodabench.register_scorer(SCORER_SPEC)                # a ScorerSpec (scoring/registry.py): data.scorer=<name>

A method's and a task's config nodes (``method/<name>``, ``data/<name>``) are stored as they
register (config/registry.py), so neither needs a YAML file of its own.

``load_plugins()`` imports every plugin module named by

- the entry-point group ``lodabench.plugins`` of the installed distributions (as lm-evaluation-
  harness and pytest find theirs): ``[project.entry-points."lodabench.plugins"] x = "pkg.module"``;
- the environment variable ``LODABENCH_PLUGINS=mod1,mod2`` (modules importable from PYTHONPATH).

Plugins are loaded at the doors only (issue #28), never by a lookup: ``python -m lodabench``
(load_plugins_or_exit in entry.main, before Hydra composes, so ``method=<name>`` / ``data=<name>``
find the plugin's node), the library API (``lodabench.apply_method``, ``load_adapter``, ``merge``) and
``schema.compose``. Code that looks a plugin's name up otherwise (``get_task``, ``get_scorer``) calls
``lodabench.load_plugins()`` first. The loader lives in config/plugin_loader.py, below the registries;
this module is its public face. Only modules the environment names are imported: nothing in a config
selects code to run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lodabench.config.plugin_loader import (  # noqa: F401  (public here: lodabench.load_plugins, tests)
    ENTRY_POINT_GROUP, ENV_VAR, _failed, _loaded, load_plugins, load_plugins_or_exit, loaded_plugins)
from lodabench.config.replacements import note_replaced, refuse_builtin_name, replaced_builtins  # replaced_builtins: public here too
from lodabench.errors import ConfigError


def register_method_config(name: str, config: str | os.PathLike | Mapping[str, Any], *,
                           replace: bool = False) -> None:
    """Give ``method=<name>`` other values than its config dataclass's defaults (a YAML file or a mapping).

    Optional: ``register_method(spec)`` alone already makes ``method=<name>`` compose to the
    dataclass's defaults (registration stores the node). The values are validated now, with the same checks
    as any method config (``methods.method_config``: unknown keys, types, ranges), so
    ``register_method(spec)`` must come first; they go on top of the typed node ``method/<name>``.
    New values for a built-in method (one no plugin replaced) need ``replace=True``, as a spec does.
    """
    from omegaconf import OmegaConf

    from lodabench import methods
    from lodabench.config import schema

    builtin = _builtin_in_use(name)
    if builtin is not None and not replace:
        raise refuse_builtin_name(f"config values for method={name!r}", builtin, "register_method_config",
                                  "register_method_config")

    node = OmegaConf.load(Path(config)) if isinstance(config, (str, os.PathLike)) else OmegaConf.create(dict(config))
    if node.get("name") != name:
        raise ConfigError(f"register_method_config({name!r}): the config's name is {node.get('name')!r}. "
                          f"Fix: set `name: {name}` in {config if not isinstance(config, Mapping) else 'the mapping'}")
    methods.method_config(node)
    schema.set_option_values("method", name, node)
    if builtin is not None:
        note_replaced("method_config", name, builtin, "register_method_config")


def _builtin_in_use(name: str) -> str | None:
    """The module of the built-in method ``name`` when its own spec is the one registered, else None."""
    from lodabench import methods
    spec = methods.builtin_spec(name)
    return methods.REGISTRY[name] if spec is not None and methods.get_spec(name) is spec else None


__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "load_plugins", "load_plugins_or_exit", "loaded_plugins",
           "register_method_config", "replaced_builtins"]
