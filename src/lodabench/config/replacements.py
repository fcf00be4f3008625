"""Which built-in names (methods, tasks, scorers, pipeline kinds) a registration replaced, and the
refusal when it did not say ``replace=True`` (every registry's).

Kept below the registries and the plugin loader: the registries (config/registry.py) report here,
config/plugin_loader.load_plugins says which plugin is importing (``IMPORTING``), and a run's record
lists ``replaced_builtins()``.
"""

from __future__ import annotations

from lodabench.errors import ConfigError

IMPORTING: list[tuple[str, str]] = []  # (module, source) of the plugin whose import is running now
REPLACED: dict[tuple[str, str], dict[str, str]] = {}  # (kind, name) -> who replaced a built-in


def registrant(fallback: str) -> str:
    """Who is registering now, for a registry's error: the plugin being imported, else ``fallback``."""
    if IMPORTING:
        module_name, source = IMPORTING[-1]
        return f"plugin module {module_name!r} (from {source})"
    return fallback


def note_replaced(kind: str, name: str, builtin: str, by: str) -> None:
    """Remember that ``by`` replaced the built-in ``kind`` ``name`` (defined in ``builtin``) with replace=True."""
    plugin = IMPORTING[-1][0] if IMPORTING else None
    REPLACED[(kind, name)] = {"kind": kind, "name": name, "builtin": builtin, "by": plugin or by}


def forget_replaced(kind: str, name: str) -> None:
    """The built-in ``kind`` ``name`` is back (unregister_*): no longer replaced."""
    REPLACED.pop((kind, name), None)


def replaced_builtins() -> list[dict[str, str]]:
    """Built-in names that run other code in this process: ``[{kind, name, builtin, by}]``, by name.

    A run's record lists them (its plugins' fingerprints), so a number made by a plugin's ``lora``
    never reads as the built-in's; ``by`` is the plugin module (or, outside a plugin import, the
    module of the replacing spec).
    """
    return [dict(REPLACED[key]) for key in sorted(REPLACED)]


def refuse_builtin_name(option: str, builtin: str, who: str, func: str) -> ConfigError:
    """The error for a registration under a built-in name without replace=True (every registry's).

    ``option`` is what the user types (``method='lora'``), ``who`` the registrant outside a plugin
    import and ``func`` the register_* call that takes ``replace=True``."""
    return ConfigError(f"{registrant(who)} registers {option}, a built-in name (defined in {builtin}); without "
                       "replace=True a run would read as the built-in's. Fix: use another name, or pass "
                       f"replace=True to {func} to replace the built-in on purpose (the run's record then lists "
                       "the replacement)")


__all__ = ["IMPORTING", "REPLACED", "forget_replaced", "note_replaced", "refuse_builtin_name", "registrant",
           "replaced_builtins"]
