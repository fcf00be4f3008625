"""The task registry: ``data=<name>`` -> a ``TaskSpec`` (default config, builder, pipeline).

Every task enters through ``register_task(spec)``, the built-in ones (``lodabench.tasks.e2e``,
``dart``, ``glue``: each module's ``TASKS`` list, registered the first time the registry is used)
and a plugin's (``lodabench.plugins``: a module named by an entry point or LODABENCH_PLUGINS that
calls ``register_task`` when imported) alike. A spec is checked at registration, so a broken
plugin fails at import, naming the spec, not in the middle of a run.

``TASKS`` is the tasks' ``Registry`` (config/registry.py); registering stores ``data/<name>``'s node.
Importing this module also stores ``decoding=beam`` (the decoding group's one code-defined option), so
the task side's nodes exist once schema.store_schema has imported it (config/registry.GROUP_MODULES).

``get_task(cfg.data, data_root)`` validates the data config against the spec's dataclass
(``task_config``: unknown key, wrong type, bad value, unknown scorer: a ``ConfigError`` naming
``data.<key>``) and builds the task; ``data_root=None`` loads from the Hugging Face hub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lodabench.config.registry import Registry, check_name
from lodabench.config.schema import store_option
from lodabench.config.typed import build_config, plain_values
from lodabench.errors import ConfigError, DataError
from lodabench.scoring.registry import get_scorer, scorer_of
from lodabench.tasks.decoding import DecodingConfig
from lodabench.tasks.pipelines import pipeline_kinds
from lodabench.tasks.specs import DATA_ROOT_HINT, Task, check_spec_metrics


@dataclass(frozen=True)
class TaskSpec:
    """One task: ``data=<name>`` on the command line.

    ``config`` is the default config *instance* (a dataclass whose ``name`` is ``name``; the
    values a run does not set); ``build(config, data_root)`` returns the task object
    (``GenerationTask`` / ``ClassificationTask``; ``data_root`` None = the hub); ``pipeline`` says
    which pipeline trains it: a kind of ``lodabench.tasks.pipelines`` (``generation``: LM loss, decoding, a
    scorer; ``classification``: a head and GLUE metrics; or one a plugin added with ``register_pipeline``).
    """

    name: str
    config: Any
    build: Callable[[Any, Path | None], Task]
    pipeline: str
    description: str = ""
    metrics: Any = None  # lodabench.tasks.specs.TaskMetrics: what the task reports (None: its scorer's primary)


def _origin(spec: TaskSpec) -> str:
    return getattr(spec.build, "__module__", None) or type(spec.config).__module__


# register=: through the module attribute, so a wrapped register_task (tests) sees the built-ins enter.
TASKS: Registry[TaskSpec] = Registry(
    "task", attr="TASKS", register=lambda spec: register_task(spec), origin=_origin,
    option=lambda name: f"data={name!r}", bulk=("lodabench.tasks.e2e", "lodabench.tasks.dart", "lodabench.tasks.glue"),
    group="data", node=lambda spec: store_option("data", spec.name, type(spec.config), dataclasses.asdict(spec.config)))
_REGISTRY = TASKS  # the old name


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Make ``spec`` a task: ``data=<spec.name>`` on the command line, ``get_task`` in code.

    The one way in, for the built-in tasks and for plugins alike. Registering another spec under a
    taken name (a built-in's included) needs ``replace=True``; registering stores ``data/<name>``'s
    config node (config/registry.py).
    """
    _check_spec(spec)
    check_spec_metrics(spec)  # declared metrics must be keys its scorer returns (lodabench.tasks.specs)
    return TASKS.register(spec, replace)


def _check_spec(spec: Any) -> None:
    where = f"register_task({getattr(spec, 'name', spec)!r})"
    if not isinstance(spec, TaskSpec):
        raise ConfigError(f"{where}: expected a lodabench.TaskSpec, got {type(spec).__name__}")
    check_name(spec.name, where, "data=<name> on the command line and a run-directory part")
    _check_config(spec, where)
    if not callable(spec.build):
        raise ConfigError(f"{where}: build must be a callable (config, data_root) -> task")
    if spec.pipeline not in pipeline_kinds():  # the pipeline registry is the one list of kinds
        raise ConfigError(f"{where}: pipeline={spec.pipeline!r} is not one of {', '.join(pipeline_kinds())} "
                          "(a new kind: lodabench.tasks.pipelines.register_pipeline first)")


def _check_config(spec: TaskSpec, where: str) -> None:
    """The config must be a default *instance* whose ``name`` is the spec's (get_task dispatches on it)."""
    config = spec.config
    if isinstance(config, type) or not dataclasses.is_dataclass(config):
        raise ConfigError(f"{where}: config must be a dataclass instance, the task's default config "
                          f"(e.g. GlueDataConfig(name='sst2')), got {config!r:.80}")
    if getattr(config, "name", None) != spec.name:
        raise ConfigError(f"{where}: {type(config).__name__} needs a field `name` equal to {spec.name!r}, "
                          f"got {getattr(config, 'name', None)!r} (get_task dispatches on data.name)")


def unregister_task(name: str) -> None:
    """Remove a task registered by ``register_task`` (tests); a replaced built-in comes back."""
    TASKS.remove(name)


def task_names() -> list[str]:
    """Every task name: the built-ins and the registered plugins'."""
    return TASKS.names()


def task_spec(name: str) -> TaskSpec:
    """The spec of ``data=<name>`` (a plugin's only once its plugin is loaded: the doors do that)."""
    return TASKS.get(name, lambda valid: f"data.name={name!r} is not a known task. Valid names: "
                     f"{', '.join(valid)}. A task of your own: see docs/extending.md (\"Add a task\")")


def task_config(data_cfg: Any) -> Any:
    """The validated config instance of ``data_cfg`` (a mapping or DictConfig with a ``name``).

    Keys not given take the task's defaults; an unknown key, a value of the wrong type, a bad
    value (the config's ``validate``) or an unknown ``data.scorer`` raise ``ConfigError``
    naming ``data.<key>``, before anything is loaded.
    """
    values = data_cfg if dataclasses.is_dataclass(data_cfg) else plain_values(data_cfg, "data")
    name = getattr(values, "name", None) if dataclasses.is_dataclass(values) else values.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"the data config has no 'name' key naming a task (got {name!r}). "
                          f"Fix: data=<name>, one of {', '.join(task_names())}")
    spec = task_spec(name)
    conf = build_config(spec.config, values, "data")  # an instance of the task's class is kept as it is
    if hasattr(conf, "validate"):
        conf.validate()
    if spec.pipeline == "generation":
        _check_scorer(conf)
    return conf


def _check_scorer(conf: Any) -> None:
    """A generation task's scorer must exist and accept its options (``ScorerSpec.check``)."""
    scorer = get_scorer(scorer_of(conf))
    if scorer.check is not None:
        scorer.check(conf)


def data_scorer(data_cfg: Any) -> tuple[Any, Any]:
    """(the validated data config, the scorer its ``data.scorer`` names); task_config also runs the
    scorer's option check, so a bad data.scorer / data.mteval fails before training."""
    conf = task_config(data_cfg)
    return conf, get_scorer(scorer_of(conf))


def get_task(data_cfg: Mapping | Any, data_root: Path | str | None) -> Task:
    """Build the task named ``data_cfg["name"]``; ``data_root=None`` loads from the hub."""
    return build_task(task_config(data_cfg), data_root)


def build_task(conf: Any, data_root: Path | str | None) -> Task:
    """Build the task of ``conf``, a data config that ``task_config`` has typed and validated already
    (run.preflight's Plan.data): it is not typed nor validated again."""
    root = Path(data_root) if data_root is not None else None
    if root is not None and not root.is_dir():
        raise DataError(f"data root {str(root)!r} is not a directory. {DATA_ROOT_HINT}.")
    spec = task_spec(conf.name)
    task = spec.build(conf, root)
    if getattr(task, "kind", None) != spec.pipeline:
        raise ConfigError(f"data={spec.name}: {_origin(spec)} built a task of kind {getattr(task, 'kind', None)!r} "
                          f"but registered pipeline={spec.pipeline!r}. Fix: make them agree")
    return task


__all__ = [
    "TaskSpec", "build_task", "data_scorer", "get_task", "register_task", "task_config", "task_names", "task_spec",
    "unregister_task",
]

store_option("decoding", "beam", DecodingConfig)  # decoding=beam: DecodingConfig's defaults (LoRA's beam settings)
