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
import traceback
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from lodabench.config import replacements
from lodabench.errors import ConfigError
from lodabench.config.replacements import note_replaced, refuse_builtin_name, replaced_builtins  # replaced_builtins: public here too

ENTRY_POINT_GROUP = "lodabench.plugins"
ENV_VAR = "LODABENCH_PLUGINS"

_loaded: dict[str, str] = {}  # module name -> where it was named (entry point / env var)
_failed: dict[str, ConfigError] = {}  # module name -> why its import failed (raised again, not re-imported)


def load_plugins() -> dict[str, str]:
    """Import every plugin module once; returns {module: source} of all loaded so far."""
    for source, module_name in _plugin_modules():
        if module_name in _failed:
            raise _failed[module_name]  # a half-imported plugin is not retried (its registrations would clash)
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
    """Import one plugin; whatever it raises becomes that plugin's ConfigError (one line, no traceback)."""
    replacements.IMPORTING.append((module_name, source))
    try:
        importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's own bug is reported as the plugin's
        error = _plugin_failure(module_name, source, exc)
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == module_name):
            _failed[module_name] = error  # some of it ran: not retried (found later, e.g. installed, it is)
        raise error from exc
    finally:
        replacements.IMPORTING.pop()


def _plugin_failure(module_name: str, source: str, exc: BaseException) -> ConfigError:
    """The one-line error of a plugin whose import raised ``exc``; the fix depends on what failed."""
    where = f"plugin module {module_name!r} (from {source})"
    if isinstance(exc, ConfigError):  # a registration the registry refused: its message names the fix
        return exc if str(exc).startswith(where) else ConfigError(f"{where}: {exc}")
    if isinstance(exc, ImportError):
        return ConfigError(f"{where} cannot be imported: {exc}. Fix: install the plugin package, put it on "
                           f"PYTHONPATH, or remove it from {ENV_VAR}")
    return ConfigError(f"{where} failed while being imported: {type(exc).__name__}: {exc}{_raised_at(exc)}. Fix: "
                       f"correct or update the plugin, or stop loading it (remove it from {ENV_VAR} or uninstall "
                       "its distribution)")


def _raised_at(exc: BaseException) -> str:
    """`` (at file:line)`` of the innermost frame, so the one line still points at the plugin's bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def register_method_config(name: str, config: str | os.PathLike | Mapping[str, Any], *,
                           replace: bool = False) -> None:
    """Give ``method=<name>`` other values than its config dataclass's defaults (a YAML file or a mapping).

    Optional: ``register_method(spec)`` alone already makes ``method=<name>`` compose to the
    dataclass's defaults (schema.store_schema). The values are validated now, with the same checks
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


__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "load_plugins", "load_plugins_or_exit", "register_method_config",
           "replaced_builtins"]


def loaded_plugins() -> dict[str, str]:
    """{module: where it was named} of the plugins this process imported, read-only (a run's record
    fingerprints them: lodabench.run.fingerprints)."""
    return dict(_loaded)
