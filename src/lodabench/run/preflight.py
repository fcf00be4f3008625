"""Everything a run can check before it loads a model or takes an optimizer step.

``preflight(cfg)`` validates the whole composed config (keys against the schema, every number
against its field's domain (lodabench.config.ranges), the method's values, the trainer, the selection
rule, the reported checkpoint) and what the chosen pipeline
will need at the very end (for generation: decoding values, the scorer and its options; for
every task: readable, non-empty splits with references, enough items for each metric; sequences
that fit the model's position table). A bad value fails in seconds with the
key, the value and the fix, not after hours of training. What depends on the built model (a rank
larger than a projection, a method for another model family) is checked when the method is
applied, which is still before the first optimizer step (run.build).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from lodabench.errors import ConfigError
from lodabench.tasks.pipelines import require_rows  # noqa: F401  (public here; it moved below run: the pipelines call it)

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
    from lodabench.tasks import get_task
    from lodabench.models.local_weights import check_local_weights
    from lodabench.train.optim import optimizer_name
    from lodabench.paths import resolve_data_root
    from lodabench.tasks.pipelines import pipeline_class
    from lodabench.run.config_ranges import check_config_ranges
    from lodabench.config.schema import check_composed
    from lodabench.train.selection import check_against_trainer, selection_config
    from lodabench.train.trainer import check_trainer_values

    check_composed(cfg)  # a run started from code (not the CLI) gets the schema check too
    check_config_ranges(cfg)  # every number inside its field's domain (NaN, a beta >= 1, a ratio > 1 refused)
    check_local_weights(cfg.model)  # a local model.pretrained must be the recipe's model (it shares its run dir)
    method = methods.method_config(cfg.method)
    check_trainer_values(cfg.trainer)
    optimizer_name(cfg.trainer)
    selection = selection_config(cfg)
    check_against_trainer(selection, cfg.trainer)  # epochs kept and reached, the rule's signal computed
    check_eval_checkpoint(cfg)
    task = get_task(cfg.data, resolve_data_root(cfg.paths.data_root))
    pipeline_cls = pipeline_class(task)
    pipeline_cls.preflight(cfg, task)
    check_metric_items(cfg, task)
    check_positions(cfg, method, pipeline_cls.model_kind)
    return Plan(method, selection, task, pipeline_cls)


def check_eval_checkpoint(cfg: DictConfig) -> None:
    value = cfg.eval_checkpoint
    if value not in EVAL_CHECKPOINTS:
        raise ConfigError(f"eval_checkpoint={value!r} is not one of {', '.join(EVAL_CHECKPOINTS)}. Fix: "
                          "eval_checkpoint=last (score the final model) or best_dev (lowest dev loss epoch)")
    if value == "best_dev" and not cfg.trainer.eval_dev_loss:
        raise ConfigError("eval_checkpoint=best_dev needs trainer.eval_dev_loss=true (it selects on the dev loss)")
    if value == "best_dev" and not cfg.trainer.keep_epoch_checkpoints:
        raise ConfigError("eval_checkpoint=best_dev loads the best epoch's checkpoint after training, which "
                          "trainer.keep_epoch_checkpoints=false does not keep. Fix: set "
                          "trainer.keep_epoch_checkpoints=true (or eval_checkpoint=last)")
    if value == "best_dev" and 0 in (cfg.trainer.epochs, cfg.trainer.max_steps):
        key = "trainer.epochs" if cfg.trainer.epochs == 0 else "trainer.max_steps"
        raise ConfigError(f"eval_checkpoint=best_dev selects among epoch checkpoints, and {key}=0 trains none. Fix: "
                          f"eval_checkpoint=last (score the untrained model) or {key} > 0")


# The fewest scored items a metric is defined on. A correlation of one pair is undefined (scipy's
# pearsonr/spearmanr raise; sklearn's matthews_corrcoef returns 0.0), and CIDEr's IDF over a single
# item is log(1/1) = 0, so every hypothesis scores 0: a run would train, then fail or record nonsense.
MIN_ITEMS = {"pearson": 2, "spearman": 2, "mcc": 2, "CIDEr": 2}


def check_metric_items(cfg: DictConfig, task: Any) -> None:
    """Each split the run scores holds at least as many items as each of its metrics needs."""
    metrics = [m for m in _metric_names(cfg, task) if m in MIN_ITEMS]
    for split, count in _scored_counts(cfg, task).items():
        for metric in metrics:
            if count < MIN_ITEMS[metric]:
                raise ConfigError(_too_few(cfg, task, metric, split, count))


def _too_few(cfg: DictConfig, task: Any, metric: str, split: str, count: int) -> str:
    need, cap = MIN_ITEMS[metric], cfg.data.get("max_eval_items")
    asked = f" (data.max_eval_items={cap})" if cap is not None else ""
    return (f"{task.name}: {metric} needs at least {need} scored items, but the {split} split gives {count}{asked}. "
            f"Fix: set data.max_eval_items >= {need} (or null: every item)")


def _metric_names(cfg: DictConfig, task: Any) -> tuple[str, ...]:
    """The metrics the run will compute: a GLUE task's own, or those its scorer's module lists (METRICS)."""
    if hasattr(task, "metric_names"):
        return tuple(task.metric_names)
    import importlib

    from lodabench.tasks.registry import data_scorer

    _, scorer = data_scorer(cfg.data)
    return tuple(getattr(importlib.import_module(scorer.score.__module__), "METRICS", ()))


def _scored_counts(cfg: DictConfig, task: Any) -> dict[str, int]:
    """Items per scored split after data slicing (the splits were read by the pipeline's preflight)."""
    if hasattr(task, "protocol_splits"):
        splits = task.protocol_splits(int(cfg.seed))
        return {"selection": len(splits["select"]), **{s: len(rows) for s, rows in splits["test"].items()}}
    split = cfg.data.eval_split
    return {split: len(task.eval_items(split))}


# Models whose positions are a learned table that an index past its end crashes (a rotary model such
# as LLaMA has no table: it is not checked). RoBERTa numbers positions from pad_token_id + 1.
def usable_positions(config: Any) -> int | None:
    """How many token positions one sequence can use in a transformers config, or None: no hard limit."""
    kind = getattr(config, "model_type", None)
    if kind == "gpt2":
        return int(config.n_positions)
    if kind == "bert":
        return int(config.max_position_embeddings)
    if kind == "roberta":
        return int(config.max_position_embeddings) - int(config.pad_token_id) - 1
    return None


def check_positions(cfg: DictConfig, method: Any, model_kind: str) -> None:
    """Virtual tokens + the longest sequence the run builds fit the model's position table.

    Training sequences are cut to trainer.max_length; a decoded sequence keeps at least one prompt
    token and adds decoding.max_new_tokens; prompt/prefix tuning shift every real token by
    method.num_virtual_tokens. Past the table a forward fails, often only when decoding, after training.
    """
    table = _position_table(cfg.model)
    if table is None:
        return
    parts = _position_parts(cfg, method, model_kind)
    if sum(v for _, v in parts) > table:
        used = " + ".join(f"{k}={v}" if "." in k else f"{v} ({k})" for k, v in parts)
        raise ConfigError(f"{used} = {sum(v for _, v in parts)} positions, but model={cfg.model.name} has {table}. "
                          f"Fix: lower {' or '.join(k for k, _ in parts if '.' in k)} so their sum is "
                          f"at most {table}")


def _position_parts(cfg: DictConfig, method: Any, model_kind: str) -> list[tuple[str, int]]:
    """The terms of the longest sequence, as (key, positions)."""
    parts = [("method.num_virtual_tokens", int(method.num_virtual_tokens))] if hasattr(method, "num_virtual_tokens") else []
    length = int(cfg.trainer.max_length)
    new = int(cfg.decoding.max_new_tokens) if model_kind == "causal_lm" and cfg.get("decoding") else 0
    if new + 1 > length:
        return parts + [("a prompt token", 1), ("decoding.max_new_tokens", new)]
    return parts + [("trainer.max_length", length)]


def _position_table(model_cfg: Any) -> int | None:
    """The model's position-table size from its config alone (no weights); None when it cannot be
    known without a download (then the forward's own error stands) or the model has no table."""
    from omegaconf import OmegaConf

    from lodabench.models.params import transformers_config

    values = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    try:
        config, _ = transformers_config(values)
    except (ConfigError, OSError, ValueError):
        return None
    return usable_positions(config)


__all__ = ["EVAL_CHECKPOINTS", "MIN_ITEMS", "Plan", "check_eval_checkpoint", "check_metric_items", "check_positions",
           "preflight", "require_rows", "usable_positions"]
