"""Loading plugins: import every module the environment names, once; each registers what it brings.

Called only at the doors (run/entry.py for the command line, library.py, schema.compose and an
unpickling worker, schema.__getattr__), never from a registry lookup: a lookup reads what is
registered. Kept in config/, below the registries, so those doors at any layer can call it; the
public face (``lodabench.load_plugins``, ``register_method_config``) is lodabench/plugins.py.

Which modules: the entry-point group ``lodabench.plugins`` of the installed distributions (as
lm-evaluation-harness and pytest find theirs) and the environment variable
``LODABENCH_PLUGINS=mod1,mod2``. Only modules the environment names are imported: nothing in a
config selects code to run.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from importlib import metadata

from lodabench.config import replacements
from lodabench.errors import ConfigError

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


def loaded_plugins() -> dict[str, str]:
    """{module: where it was named} of the plugins this process imported, read-only (a run's record
    fingerprints them: lodabench.run.fingerprints)."""
    return dict(_loaded)


__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "load_plugins", "load_plugins_or_exit", "loaded_plugins"]
