"""The scorer registry: ``data.scorer=<name>`` -> how a generation run's outputs are scored.

Every scorer enters through ``register_scorer(spec)``: the built-in ones (``lodabench.scoring.e2e``
and ``lodabench.scoring.dart``: each module's ``SCORERS`` list, registered the first time the
registry is used) and a plugin's (a module named by an entry point or LODABENCH_PLUGINS that calls
``register_scorer`` when imported) alike; ``SCORERS`` is a ``Registry`` of config/registry.py. ``GenerationPipeline.score`` looks the scorer up by the
data config's ``scorer`` (default: the task's name); ``task_config`` runs its ``check`` on the data
config before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lodabench.config.registry import Registry, check_name
from lodabench.errors import ConfigError


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


# register=: through the module attribute, so a wrapped register_scorer (tests) sees the built-ins enter.
SCORERS: Registry[ScorerSpec] = Registry(
    "scorer", attr="SCORERS", register=lambda spec: register_scorer(spec), origin=lambda spec: spec.score.__module__,
    option=lambda name: f"data.scorer={name!r}", bulk=("lodabench.scoring.e2e", "lodabench.scoring.dart"))
_REGISTRY = SCORERS  # the old name


def register_scorer(spec: ScorerSpec, *, replace: bool = False) -> ScorerSpec:
    """Make ``spec`` a scorer: ``data.scorer=<spec.name>``. A taken name needs ``replace=True``.

    The one way in, for the built-in scorers and for plugins alike; the spec is checked now, so a
    broken plugin fails at import.
    """
    _check_spec(spec)
    return SCORERS.register(spec, replace)


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
    SCORERS.remove(name)


def scorer_names() -> list[str]:
    """Every scorer name: the built-ins and the registered plugins'."""
    return SCORERS.names()


def get_scorer(name: str) -> ScorerSpec:
    """The spec of ``data.scorer=<name>`` (a plugin's only once its plugin is loaded: the doors do that)."""
    return SCORERS.get(name, lambda valid: f"data.scorer={name!r} is not a known scorer. Valid names: "
                       f"{', '.join(valid)}. A scorer of your own: see docs/extending.md (\"Add a scorer\")")


def scorer_of(data_config: Any) -> str:
    """The scorer a generation task's config selects: ``data.scorer``, else the task's own name."""
    return getattr(data_config, "scorer", None) or data_config.name


__all__ = ["ScorerSpec", "get_scorer", "register_scorer", "scorer_names", "scorer_of", "unregister_scorer"]
