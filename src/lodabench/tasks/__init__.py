"""Tasks: ``get_task(cfg.data, data_root) -> Task``, and the pieces a task is made of.

Re-exports only, so ``from lodabench.tasks import get_task, Pair`` keeps working: the task kinds
and helpers live in ``lodabench.tasks.specs``, the registry of task names (built-ins and plugins,
``register_task``) in ``lodabench.tasks.registry``, each task's loader and config in its own module
(``e2e``, ``dart``, ``glue``).
"""

from lodabench.tasks.registry import (
    TaskSpec,
    get_task,
    register_task,
    task_config,
    task_names,
    task_spec,
    unregister_task,
)
from lodabench.tasks.specs import (
    DATA_ROOT_HINT,
    ClassificationTask,
    DataConfig,
    EvalItem,
    GenerationTask,
    Pair,
    Row,
    Slicing,
    Task,
    group_pairs,
    holdout_split,
    subsample,
)

__all__ = [
    "DATA_ROOT_HINT", "ClassificationTask", "DataConfig", "EvalItem", "GenerationTask", "Pair", "Row",
    "Slicing", "Task", "TaskSpec", "get_task", "group_pairs", "holdout_split", "register_task", "subsample",
    "task_config", "task_names", "task_spec", "unregister_task",
]
