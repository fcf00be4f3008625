"""The scorer registry: ``data.scorer=<name>`` -> how a generation run's outputs are scored.

Every scorer enters through ``register_scorer(spec)``: the built-in ones (``lodabench.scoring.e2e``
and ``lodabench.scoring.dart``: each module's ``SCORERS`` list, registered the first time the
registry is used) and a plugin's (a module named by an entry point or LODABENCH_PLUGINS that calls
``register_scorer`` when imported) alike. ``GenerationPipeline.score`` looks the scorer up by the
data config's ``scorer`` (default: the task's name); ``task_config`` runs its ``check`` on the data
config before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lodabench.errors import ConfigError
from lodabench.config.specs import SpecRegistry, check_name


@dataclass(frozen=True)
class ScorerSpec:
    """One scorer: ``data.scorer=<name>``.

    ``score(hyps, refs, data_config)`` returns the metrics of the outputs (``refs[i]``: every
    reference of item i; ``data_config``: the task's validated config instance, for the scorer's
    options such as ``mteval``); ``primary_metric`` is the key the papers' tables lead with and
    where ``selection.rule=dev_metric`` selects; ``check(data_config)`` validates the scorer's
    options cheaply (no scoring) and raises ``ConfigError`` naming ``data.<key>``.
    """

    name: str
    score: Callable[[list[str], list[list[str]], Any], dict[str, Any]]
    primary_metric: str
    check: Callable[[Any], None] | None = None
    description: str = ""
    # The programs and files scoring will run (java, jars, perl), checked by a run's preflight before
    # training; kept out of ``check`` so that reading a config never needs them.
    ready: Callable[[Any], None] | None = None


_REGISTRY = SpecRegistry("scorer", ("lodabench.scoring.e2e", "lodabench.scoring.dart"), "SCORERS")


def register_scorer(spec: ScorerSpec, *, replace: bool = False) -> ScorerSpec:
    """Make ``spec`` a scorer: ``data.scorer=<spec.name>``. A taken name needs ``replace=True``.

    The one way in, for the built-in scorers and for plugins alike; the spec is checked now, so a
    broken plugin fails at import.
    """
    _REGISTRY.load_builtins(register_scorer)
    _check_spec(spec)
    return _REGISTRY.add(spec, replace, lambda s: s.score.__module__, f"data.scorer={spec.name!r}")


def _check_spec(spec: Any) -> None:
    where = f"register_scorer({getattr(spec, 'name', spec)!r})"
    if not isinstance(spec, ScorerSpec):
        raise ConfigError(f"{where}: expected a lodabench.ScorerSpec, got {type(spec).__name__}")
    check_name(spec.name, where, "data.scorer=<name>")
    if not callable(spec.score) or any(f is not None and not callable(f) for f in (spec.check, spec.ready)):
        raise ConfigError(f"{where}: score (and check, ready, when given) must be callables")
    if not isinstance(spec.primary_metric, str) or not spec.primary_metric:
        raise ConfigError(f"{where}: primary_metric must name one of the metrics score returns, "
                          f"got {spec.primary_metric!r}")


def unregister_scorer(name: str) -> None:
    """Remove a scorer registered by ``register_scorer`` (tests); a replaced built-in comes back."""
    _REGISTRY.remove(name)


def scorer_names() -> list[str]:
    """Every scorer name: the built-ins and the registered plugins'."""
    _REGISTRY.load_builtins(register_scorer)
    return list(_REGISTRY.specs)


def get_scorer(name: str) -> ScorerSpec:
    """The spec of ``data.scorer=<name>``; plugins are loaded before a name is called unknown."""
    _REGISTRY.load_builtins(register_scorer)
    return _REGISTRY.lookup(name, lambda valid: f"data.scorer={name!r} is not a known scorer. Valid names: "
                            f"{', '.join(valid)}. A scorer of your own: see docs/extending.md (\"Add a scorer\")")


def scorer_of(data_config: Any) -> str:
    """The scorer a generation task's config selects: ``data.scorer``, else the task's own name."""
    return getattr(data_config, "scorer", None) or data_config.name


__all__ = ["ScorerSpec", "get_scorer", "register_scorer", "scorer_names", "scorer_of", "unregister_scorer"]
