"""One registry of named specs, for methods, tasks, scorers and pipeline kinds: built-ins and plugins
enter the same way, and a spec with a config enters Hydra's ConfigStore as it registers.

Each kind keeps one ``Registry``: ``register(spec)`` checks the name is free (a built-in name needs
``replace=True``: config/replacements.py notes it for the run's record) and, where the kind has a config
group (``method/<name>``, ``data/<name>``), stores the spec's config dataclass as that group's node
(``node``: config/schema.py ``store_option``), so registration is the one source of config nodes. Lookups never
import plugins: the doors (run/entry.py, library.py, schema.compose) call ``load_plugins`` first.

Built-ins are found by module name, imported on first use: ``lazy`` maps a name to the module whose
``attr`` list holds its spec (methods: one module per name, so a module not written yet breaks only its
names), ``bulk`` lists modules all of whose specs enter on first use (tasks, scorers).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lodabench.config import replacements
from lodabench.errors import ConfigError

T = TypeVar("T")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# group -> the module whose import creates that group's registry (and so its nodes). By name, as the
# built-in modules are, because the registries live in the layers above config (schema.store_schema).
GROUP_MODULES = {"method": "lodabench.methods", "data": "lodabench.tasks.registry"}
_GROUPS: dict[str, Registry[Any]] = {}


class Registry(Generic[T]):
    """Specs of one kind (``kind``: "method", "task", "scorer", "pipeline") by name."""

    def __init__(self, kind: str, *, attr: str, register: Callable[[T], T], origin: Callable[[T], str],
                 option: Callable[[str], str], lazy: dict[str, str] | None = None, bulk: tuple[str, ...] = (),
                 group: str | None = None, node: Callable[[T], None] | None = None,
                 same: Callable[[T, T], bool] = lambda a, b: a is b) -> None:
        self.kind, self.attr, self.origin, self.option, self.same = kind, attr, origin, option, same
        self._register = register  # the public register_* function: built-ins enter through it as a plugin does
        self.modules: dict[str, str] = dict(lazy or {})  # name -> module, in listing order (plugins appended)
        self.builtin_modules = dict(self.modules)
        self.bulk, self.group = bulk, group
        self.node = node  # stores the spec's config node (schema.store_option): the kind's module passes it
        self.specs: dict[str, T] = {}
        self.builtin: dict[str, T] = {}  # what remove() restores after a built-in was replaced
        self.loaded = False
        if group is not None:
            _GROUPS[group] = self

    # ------------------------------------------------------------------------------ built-ins
    def load_bulk(self) -> None:
        """Register the ``bulk`` modules' specs once, through the public register_* function."""
        if self.loaded:
            return
        self.loaded = True  # before the imports: register() calls back here
        try:
            for module_name in self.bulk:
                for spec in getattr(importlib.import_module(module_name), self.attr):
                    self.builtin[spec.name] = spec
                    self.builtin_modules.setdefault(spec.name, module_name)
                    if spec.name not in self.specs:
                        self._register(spec)
        except BaseException:
            self.loaded = False
            raise

    def builtin_spec(self, name: str) -> T | None:
        """The built-in spec of ``name`` (None for a plugin's name, or a built-in module not available)."""
        if name in self.builtin or name not in self.builtin_modules:
            return self.builtin.get(name)
        try:
            module = importlib.import_module(self.builtin_modules[name])
        except ModuleNotFoundError:
            return None
        spec = next((s for s in getattr(module, self.attr, []) if s.name == name), None)
        if spec is not None:
            self.builtin[name] = spec
        return spec

    # ------------------------------------------------------------------------------ in and out
    def register(self, spec: T, replace: bool = False) -> T:
        """Add a checked spec (its node too); a taken name needs ``replace`` (the error names both)."""
        self.load_bulk()
        name = spec.name  # type: ignore[attr-defined]
        taken = self.specs.get(name) or self.builtin_spec(name)
        if (taken is not None and not self.same(spec, taken)) or (taken is None and name in self.builtin_modules):
            self._replace(spec, taken, replace)
        self.specs[name] = spec
        if replace or name not in self.modules:
            self.modules[name] = self.origin(spec)
        self._store_node(spec)
        return spec

    def _replace(self, spec: T, taken: T | None, replace: bool) -> None:
        name = spec.name  # type: ignore[attr-defined]
        builtin = self.builtin_modules.get(name)
        if builtin is not None and name in self.builtin:
            builtin = self.origin(self.builtin[name])
        if not replace and builtin is not None:
            raise replacements.refuse_builtin_name(self.option(name), builtin, f"module {self.origin(spec)!r}",
                                                   f"register_{self.kind}")
        if not replace:
            raise ConfigError(f"register_{self.kind}: {self.kind} {name!r} is already registered by "
                              f"{self.origin(taken)}; {replacements.registrant(self.origin(spec))} registers it "
                              f"again. Fix: give the new {self.kind} another name, or pass replace=True to "
                              "override it on purpose")
        builtin_spec = self.builtin_spec(name)
        if builtin_spec is not None and self.same(spec, builtin_spec):
            replacements.forget_replaced(self.kind, name)  # the built-in itself, back in place
        elif builtin is not None:
            replacements.note_replaced(self.kind, name, builtin, self.origin(spec))

    def _store_node(self, spec: T) -> None:
        if self.node is not None:
            self.node(spec)

    def remove(self, name: str) -> None:
        """Forget ``name``; a replaced built-in comes back (its node too)."""
        replacements.forget_replaced(self.kind, name)
        self.specs.pop(name, None)
        if name in self.builtin_modules:
            self.modules[name] = self.builtin_modules[name]  # in place: the names keep their order
            builtin = self.builtin_spec(name)
            if builtin is not None:
                self.specs[name] = builtin
                self._store_node(builtin)
        else:
            self.modules.pop(name, None)

    # ------------------------------------------------------------------------------ lookups
    def names(self) -> list[str]:
        """Every name: the built-ins, then the registered plugins', in registration order."""
        self.load_bulk()
        return list(self.modules)

    def get(self, name: str, unknown: Callable[[list[str]], str]) -> T:
        """The spec of ``name``; an unknown name is ``unknown(valid names)`` (plugins are not loaded here)."""
        if name in self.specs:
            return self.specs[name]
        if name not in self.names():
            raise ConfigError(unknown(self.names()))
        if name not in self.specs:
            self._load(name)
        return self.specs[name]

    def _load(self, name: str) -> None:
        """Import the module ``name`` is listed under and register its spec (a built-in's first use)."""
        module_path = self.modules[name]
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name != module_path:
                raise
            raise ConfigError(f"{self.option(name)} is registered in {module_path}, which is not available yet "
                              f"({exc}). Fix: pick another {self.kind} or add {module_path.replace('.', '/')}.py") from exc
        spec = next((s for s in getattr(module, self.attr, []) if s.name == name), None)
        if spec is None:
            raise ConfigError(f"{self.option(name)}: {module_path} defines no spec of that name in {self.attr}")
        self._register(spec)

    def load_all(self) -> None:
        """Register every listed name's spec (its node too); a module not available is skipped."""
        for name in self.names():
            try:
                self.get(name, str)
            except ConfigError:
                continue  # its name fails with get's message when used


def group_registries() -> list[Registry[Any]]:
    """The registries of the config groups whose options are code (``method``, ``data``), every built-in
    registered: what schema.store_schema and an unpickling process need before composing."""
    for module_name in GROUP_MODULES.values():
        importlib.import_module(module_name)
    for reg in _GROUPS.values():
        reg.load_all()
    return list(_GROUPS.values())


def check_name(name: Any, where: str, used_as: str) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}: the name must match [a-z][a-z0-9_]* (it is {used_as}), got {name!r}")


__all__ = ["GROUP_MODULES", "NAME", "Registry", "check_name", "group_registries"]
