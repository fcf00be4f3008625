"""Everything a run can check before it loads a model or takes an optimizer step.

``preflight(cfg)`` validates the whole composed config (keys against the schema, the method's
values, the trainer, the selection rule, the reported checkpoint) and what the chosen pipeline
will need at the very end (for generation: decoding values, the scorer and its options; for
every task: readable, non-empty splits with references). A bad value fails in seconds with the
key, the value and the fix, not after hours of training. What depends on the built model (a rank
larger than a projection, a method for another model family) is checked when the method is
applied, which is still before the first optimizer step (run.build).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from lodabench.errors import ConfigError, DataError

EVAL_CHECKPOINTS = ("last", "best_dev")


@dataclass(frozen=True)
class Plan:
    """What preflight validated, handed to the build step so nothing is parsed twice."""

    method: Any            # the method's config dataclass (methods.method_config)
    selection: Any         # selection.Selection
    task: Any              # the task object (data.get_task)
    pipeline_cls: type     # pipelines.pipeline_class(task)


def preflight(cfg: DictConfig) -> Plan:
    """Validate the run's config and data; raise ConfigError / DataError naming key, value and fix."""
    from lodabench import methods
    from lodabench.data import get_task
    from lodabench.models import check_local_weights
    from lodabench.optim import optimizer_name
    from lodabench.paths import resolve_data_root
    from lodabench.pipelines import pipeline_class
    from lodabench.schema import check_composed
    from lodabench.selection import selection_config
    from lodabench.trainer import check_trainer_values

    check_composed(cfg)  # a run started from code (not the CLI) gets the schema check too
    check_local_weights(cfg.model)  # a local model.pretrained must be the recipe's model (it shares its run dir)
    method = methods.method_config(cfg.method)
    check_trainer_values(cfg.trainer)
    optimizer_name(cfg.trainer)
    selection = selection_config(cfg)
    check_eval_checkpoint(cfg)
    task = get_task(cfg.data, resolve_data_root(cfg.paths.data_root))
    pipeline_cls = pipeline_class(task)
    pipeline_cls.preflight(cfg, task)
    return Plan(method, selection, task, pipeline_cls)


def check_eval_checkpoint(cfg: DictConfig) -> None:
    value = cfg.eval_checkpoint
    if value not in EVAL_CHECKPOINTS:
        raise ConfigError(f"eval_checkpoint={value!r} is not one of {', '.join(EVAL_CHECKPOINTS)}. Fix: "
                          "eval_checkpoint=last (score the final model) or best_dev (lowest dev loss epoch)")
    if value == "best_dev" and not cfg.trainer.eval_dev_loss:
        raise ConfigError("eval_checkpoint=best_dev needs trainer.eval_dev_loss=true (it selects on the dev loss)")


def require_rows(rows: Any, what: str, fix: str) -> None:
    """A split the run will use must have rows: fail now, naming it, not at the end of training."""
    if not rows:
        raise DataError(f"{what} is empty. Fix: {fix}")


__all__ = ["EVAL_CHECKPOINTS", "Plan", "check_eval_checkpoint", "preflight", "require_rows"]
