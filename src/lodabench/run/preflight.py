"""Everything a run can check before it loads a model or takes an optimizer step.

``preflight(cfg)`` is the door: it types the composed config once (``run_config``:
``OmegaConf.to_object`` gives a RunConfig whose groups are the real dataclasses), checks every
number against its field's domain (``ranges.check_tree``), runs each group's own checks once (the
method's and the data's ``validate``, the decoding values, the trainer, the selection rule, the
reported checkpoint) and hands the objects down in a frozen ``Plan``; it also checks what the chosen pipeline
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
    """The run, typed once: what preflight validated, handed down so nothing below reads the raw config.

    Each group is its own dataclass (``run_config``: the composed config's own types), so the
    build, train and evaluate steps read attributes (``plan.trainer.lr``) and never restate a
    default. A pipeline takes the plan where it took the composed config: it reads the same
    attributes (``trainer``, ``data``, ``decoding``, ``selection``, ``seed``).
    """

    seed: int
    model: Any             # config.schema.ModelConfig
    method_spec: Any       # methods.base.MethodSpec
    method: Any            # the method's config dataclass (its values validated; method_spec.attach checks the model)
    data: Any              # the task's config dataclass (tasks.registry.task_config)
    task: Any              # the task object (tasks.get_task)
    pipeline_cls: type     # tasks.pipelines.pipeline_class(task)
    scorer: Any            # scoring ScorerSpec of data.scorer (None: a task scored by its own metrics)
    decoding: Any          # tasks.decoding.DecodingConfig (None: the run has no decoding group)
    trainer: Any           # config.schema.TrainerConfig
    selection: Any         # train.selection.Selection
    eval_checkpoint: str   # last | best_dev (EVAL_CHECKPOINTS)
    init_from: str | None  # warm start source (methods.checkpoint.load_warm_start)
    metrics: Any = None    # tasks.specs.TaskMetrics the task spec declares (None: it declares none; selection asks the pipeline)
    data_root: str | None = None  # paths.data_root as configured (run.fingerprints.root_from says which root chose the data)


def preflight(cfg: DictConfig) -> Plan:
    """Validate the run's config and data; raise ConfigError / DataError naming key, value and fix."""
    from lodabench.config.ranges import check_tree
    from lodabench.config.schema import check_composed
    from lodabench.models.local_weights import check_local_weights

    check_composed(cfg)  # a run started from code (not the CLI) gets the schema check too
    run = run_config(cfg)  # the door: the composed config as its dataclasses (RunConfig), typed once
    check_tree(run)  # every number of every group inside its field's domain (NaN, a beta >= 1, a ratio > 1 refused)
    check_local_weights(run.model)  # a local model.pretrained must be the recipe's model (it shares its run dir)
    plan = _typed_plan(run)
    plan.pipeline_cls.preflight(plan, plan.task)
    check_metric_items(plan)
    check_positions(plan)
    return plan


def run_config(cfg: DictConfig) -> Any:
    """The composed config as its dataclasses: ``OmegaConf.to_object`` gives a ``config.schema.RunConfig``
    whose groups are the real config classes (``run.method`` a LoRAConfig, ``run.data`` an
    E2EDataConfig, ``run.decoding`` a DecodingConfig); OmegaConf's errors come back as one ConfigError
    naming the key (``config.typed.omegaconf_message``): the one typing path, as ``build_config``'s.

    Outside a Hydra job (a config composed by ``schema.compose`` for a script or a test) ``run_name``
    cannot resolve ``${hydra:...}``: it, and ``run_dir`` built on it, then keep their template text.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from lodabench.config.typed import omegaconf_message, with_tuples

    try:
        return with_tuples(OmegaConf.to_object(_named(cfg)))
    except OmegaConfBaseException as exc:
        raise ConfigError(omegaconf_message(exc)) from None


def _named(cfg: DictConfig) -> DictConfig:
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError

    try:
        str(cfg.run_dir)  # resolves run_name too
        return cfg
    except InterpolationResolutionError:
        copy, raw = cfg.copy(), OmegaConf.to_container(cfg, resolve=False)
        for key in ("run_name", "run_dir"):  # the template as text (OmegaConf's escape: a backslash)
            copy[key] = str(raw[key]).replace("${", "\\${")
        return copy


def _typed_plan(run: Any) -> Plan:
    """Each group's own checks, once (its ``validate``, then the cross-group checks); the layers below
    take these objects (build_task, MethodSpec.attach) and do not type nor validate them again."""
    from lodabench import methods
    from lodabench.paths import resolve_data_root
    from lodabench.tasks.pipelines import pipeline_class
    from lodabench.tasks.registry import build_task

    spec = methods.get_spec(run.method.name)
    method = run.method if type(run.method) is spec.config_cls else as_method_class(spec, run.method)
    _validate(method)  # the values; the model checks wait for the model (MethodSpec.attach)
    trainer, selection = _trainer_and_selection(run)
    check_eval_checkpoint(run.eval_checkpoint, trainer)
    data, scorer = _data_and_scorer(run.data)
    task = build_task(data, resolve_data_root(run.paths.data_root))
    return Plan(seed=run.seed, model=run.model, method_spec=spec, method=method, data=data, task=task,
                pipeline_cls=pipeline_class(task), scorer=scorer, decoding=_validate(run.decoding), trainer=trainer,
                selection=selection, eval_checkpoint=run.eval_checkpoint, init_from=run.init_from,
                metrics=declared_metrics(data.name), data_root=run.paths.data_root)


def as_method_class(spec: Any, node: Any) -> Any:
    """A plugin's method class that OmegaConf cannot hold (frozen, ``__post_init__``) was composed as its
    mirror: the same values as the class itself (config.typed.build_config, the one typing path)."""
    from lodabench.config.typed import build_config

    return build_config(spec.config_cls, node, "method")


def _validate(group: Any) -> Any:
    """A group's own ``validate()`` (its choices and cross-field rules), when it has one."""
    if group is not None and hasattr(group, "validate"):
        group.validate()
    return group


def declared_metrics(task_name: str) -> Any:
    """The task spec's TaskMetrics (the one vocabulary: selection metric and direction), or None for a
    plugin task that declares none and has no scorer to ask."""
    from lodabench.tasks.registry import task_spec
    from lodabench.tasks.specs import metrics_of

    try:
        return metrics_of(task_spec(task_name))
    except ConfigError:
        return None


def _trainer_and_selection(run: Any) -> tuple[Any, Any]:
    from lodabench.train.optim import optimizer_name
    from lodabench.train.selection import check_against_trainer, selection_config
    from lodabench.train.trainer import check_trainer_values

    check_trainer_values(run.trainer)
    optimizer_name(run.trainer)
    selection = selection_config({"selection": run.selection})
    check_against_trainer(selection, run.trainer)  # epochs kept and reached, the rule's signal computed
    return run.trainer, selection


def _data_and_scorer(data: Any) -> tuple[Any, Any]:
    """The validated data config and its scorer (a task with no scorer of its own: None)."""
    from lodabench.tasks.registry import data_scorer, task_config

    try:
        return data_scorer(data)
    except ConfigError:
        conf = task_config(data)  # a bad data value fails here, with its own message
        if getattr(conf, "scorer", None) is not None:
            raise
        return conf, None


def check_eval_checkpoint(value: str, trainer: Any) -> None:
    """``eval_checkpoint`` against the typed trainer group (config.schema.TrainerConfig)."""
    if value not in EVAL_CHECKPOINTS:
        raise ConfigError(f"eval_checkpoint={value!r} is not one of {', '.join(EVAL_CHECKPOINTS)}. Fix: "
                          "eval_checkpoint=last (score the final model) or best_dev (lowest dev loss epoch)")
    if value == "best_dev" and not trainer.eval_dev_loss:
        raise ConfigError("eval_checkpoint=best_dev needs trainer.eval_dev_loss=true (it selects on the dev loss)")
    if value == "best_dev" and not trainer.keep_epoch_checkpoints:
        raise ConfigError("eval_checkpoint=best_dev loads the best epoch's checkpoint after training, which "
                          "trainer.keep_epoch_checkpoints=false does not keep. Fix: set "
                          "trainer.keep_epoch_checkpoints=true (or eval_checkpoint=last)")
    if value == "best_dev" and 0 in (trainer.epochs, trainer.max_steps):
        key = "trainer.epochs" if trainer.epochs == 0 else "trainer.max_steps"
        raise ConfigError(f"eval_checkpoint=best_dev selects among epoch checkpoints, and {key}=0 trains none. Fix: "
                          f"eval_checkpoint=last (score the untrained model) or {key} > 0")


# The fewest scored items a metric is defined on. A correlation of one pair is undefined (scipy's
# pearsonr/spearmanr raise; sklearn's matthews_corrcoef returns 0.0), and CIDEr's IDF over a single
# item is log(1/1) = 0, so every hypothesis scores 0: a run would train, then fail or record nonsense.
MIN_ITEMS = {"pearson": 2, "spearman": 2, "mcc": 2, "CIDEr": 2}


def check_metric_items(plan: Plan) -> None:
    """Each split the run scores holds at least as many items as each of its metrics needs."""
    metrics = [m for m in _metric_names(plan) if m in MIN_ITEMS]
    for split, count in _scored_counts(plan).items():
        for metric in metrics:
            if count < MIN_ITEMS[metric]:
                raise ConfigError(_too_few(plan, metric, split, count))


def _too_few(plan: Plan, metric: str, split: str, count: int) -> str:
    need, cap = MIN_ITEMS[metric], getattr(plan.data, "max_eval_items", None)
    asked = f" (data.max_eval_items={cap})" if cap is not None else ""
    return (f"{plan.task.name}: {metric} needs at least {need} scored items, but the {split} split gives {count}"
            f"{asked}. Fix: set data.max_eval_items >= {need} (or null: every item)")


def _metric_names(plan: Plan) -> tuple[str, ...]:
    """The metrics the run will compute: a GLUE task's own, or those its scorer's module lists (METRICS)."""
    if hasattr(plan.task, "metric_names"):
        return tuple(plan.task.metric_names)
    import importlib

    if plan.scorer is None:
        return ()
    return tuple(getattr(importlib.import_module(plan.scorer.score.__module__), "METRICS", ()))


def _scored_counts(plan: Plan) -> dict[str, int]:
    """Items per scored split after data slicing (the splits were read by the pipeline's preflight)."""
    task = plan.task
    if hasattr(task, "protocol_splits"):
        splits = task.protocol_splits(plan.seed)
        return {"selection": len(splits["select"]), **{s: len(rows) for s, rows in splits["test"].items()}}
    split = plan.data.eval_split
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


def check_positions(plan: Plan) -> None:
    """Virtual tokens + the longest sequence the run builds fit the model's position table.

    Training sequences are cut to trainer.max_length; a decoded sequence keeps at least one prompt
    token and adds decoding.max_new_tokens; prompt/prefix tuning shift every real token by
    method.num_virtual_tokens. Past the table a forward fails, often only when decoding, after training.
    """
    table = _position_table(plan.model)
    if table is None:
        return
    parts = _position_parts(plan)
    if sum(v for _, v in parts) > table:
        used = " + ".join(f"{k}={v}" if "." in k else f"{v} ({k})" for k, v in parts)
        raise ConfigError(f"{used} = {sum(v for _, v in parts)} positions, but model={plan.model.name} has {table}. "
                          f"Fix: lower {' or '.join(k for k, _ in parts if '.' in k)} so their sum is "
                          f"at most {table}")


def _position_parts(plan: Plan) -> list[tuple[str, int]]:
    """The terms of the longest sequence, as (key, positions)."""
    method = plan.method
    parts = [("method.num_virtual_tokens", int(method.num_virtual_tokens))] if hasattr(method, "num_virtual_tokens") else []
    length = int(plan.trainer.max_length)
    causal = plan.pipeline_cls.model_kind == "causal_lm" and plan.decoding is not None
    new = int(plan.decoding.max_new_tokens) if causal else 0
    if new + 1 > length:
        return parts + [("a prompt token", 1), ("decoding.max_new_tokens", new)]
    return parts + [("trainer.max_length", length)]


def _position_table(model_cfg: Any) -> int | None:
    """The model's position-table size from its config alone (no weights); None when it cannot be
    known without a download (then the forward's own error stands) or the model has no table."""
    import dataclasses

    from lodabench.models.params import transformers_config

    values = dataclasses.asdict(model_cfg)  # the typed model group (config.schema.ModelConfig)
    try:
        config, _ = transformers_config(values)
    except (ConfigError, OSError, ValueError):
        return None
    return usable_positions(config)


__all__ = ["EVAL_CHECKPOINTS", "MIN_ITEMS", "Plan", "check_eval_checkpoint", "check_metric_items", "check_positions",
           "preflight", "require_rows", "run_config", "usable_positions"]
