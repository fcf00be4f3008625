"""A registry of named specs (tasks, scorers): built-ins and plugins enter the same way.

The built-in specs are listed in their modules (``TASKS``, ``SCORERS``) and registered, through the
registry's public ``register_*`` function like a plugin's, the first time the registry is used;
a plugin's enter when its module is imported (``lodabench.plugins``). Lookups load the plugins
before calling a name unknown, so library use needs no ``load_plugins()`` call.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from lodabench.errors import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SpecRegistry:
    """Specs by name, for one kind (``what``: "task", "scorer")."""

    def __init__(self, what: str, builtin_modules: tuple[str, ...], attr: str) -> None:
        self.what, self.builtin_modules, self.attr = what, builtin_modules, attr
        self.specs: dict[str, Any] = {}
        self.builtin: dict[str, Any] = {}  # what remove() restores after a built-in was replaced
        self.loaded = False

    def load_builtins(self, register: Callable[[Any], Any]) -> None:
        """Register the built-in specs once with ``register`` (the public register_* function)."""
        if self.loaded:
            return
        self.loaded = True  # before the imports: register() calls back here
        try:
            for module_name in self.builtin_modules:
                for spec in getattr(importlib.import_module(module_name), self.attr):
                    self.builtin[spec.name] = spec
                    if spec.name not in self.specs:
                        register(spec)
        except BaseException:
            self.loaded = False
            raise

    def add(self, spec: Any, replace: bool, origin: Callable[[Any], str], option: str = "") -> Any:
        """Register a checked spec; a taken name needs ``replace`` (the error names the plugin and the name).

        ``option`` is how the user selects it (``data='e2e'``); a replaced built-in is noted for the
        run's record (replacements.replaced_builtins)."""
        taken = self.specs.get(spec.name)
        if taken is not None and taken is not spec:
            self._replace(spec, taken, replace, origin, option or f"{self.what} {spec.name!r}")
        self.specs[spec.name] = spec
        return spec

    def _replace(self, spec: Any, taken: Any, replace: bool, origin: Callable[[Any], str], option: str) -> None:
        from lodabench.config import replacements
        builtin = self.builtin.get(spec.name)
        if not replace and builtin is not None:
            raise replacements.refuse_builtin_name(option, origin(builtin), f"module {origin(spec)!r}",
                                              f"register_{self.what}")
        if not replace:
            raise ConfigError(f"register_{self.what}: {self.what} {spec.name!r} is already registered by "
                              f"{origin(taken)}; "
                              f"{replacements.registrant(origin(spec))} registers it again. Fix: give the new "
                              f"{self.what} another name, or pass replace=True to override it on purpose")
        if builtin is not None:
            replacements.note_replaced(self.what, spec.name, origin(builtin), origin(spec))

    def remove(self, name: str) -> None:
        """Forget ``name``; a replaced built-in comes back."""
        from lodabench.config.replacements import forget_replaced

        forget_replaced(self.what, name)
        if name in self.builtin:
            self.specs[name] = self.builtin[name]  # in place: the names keep their order
        else:
            self.specs.pop(name, None)

    def lookup(self, name: str, unknown: Callable[[list[str]], str]) -> Any:
        """The spec of ``name``, loading the plugins first when it is not registered yet."""
        if name not in self.specs:
            from lodabench.plugins import load_plugins

            load_plugins()  # a plugin may define it (library use: no CLI loaded the plugins yet)
        if name not in self.specs:
            raise ConfigError(unknown(list(self.specs)))
        return self.specs[name]


def check_name(name: Any, where: str, used_as: str) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}: the name must match [a-z][a-z0-9_]* (it is {used_as}), got {name!r}")


__all__ = ["NAME", "SpecRegistry", "check_name"]
