"""Selection protocols: which checkpoint's numbers a run reports, as config recorded in the run.

The papers do not all report "the final model":

* LoDA §3: "we train R-LoDA(+) and S-LoDA(+) up to 10 epochs and choose the best result from epoch 5
  and epoch 10" -- no other split is named, so the choice is made on the reported (test) numbers:
  ``selection.epochs=[5,10] selection.rule=test``. The record says ``selected_on_reported_split``.
* LoRA Tables 2/3 report each run's best epoch; CondLoRA §3.1 keeps the best checkpoint on a held-out
  10% of train (``data.protocol=holdout``): ``selection.rule=dev_metric`` (or ``dev_loss``).

``selection.epochs`` lists the epochs evaluated in one run: each epoch checkpoint is decoded/predicted
and scored once into ``<run_dir>/epochs/<e>/`` (resumable: a scored epoch is not redone), and the
rule picks the one whose metrics become the run's. ``null`` keeps the single evaluation chosen by
``eval_checkpoint``. ``selection.aggregate`` (mean | median) is how a table combines the seeds of a
row (LoRA: GPT-2 mean, RoBERTa median of 5); it is recorded with the run and read by the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lodabench.errors import ConfigError

RULES = ("last", "dev_loss", "dev_metric", "test")
AGGREGATES = ("mean", "median")
LOWER_IS_BETTER = {"TER", "official_TER", "dev_loss"}


@dataclass(frozen=True)
class Selection:
    epochs: tuple[int, ...] | None
    rule: str
    metric: str | None
    aggregate: str


def selection_config(cfg: Mapping[str, Any]) -> Selection:
    """The validated ``selection`` group (key, value and fix on a bad value), before anything loads."""
    from lodabench.config.schema import SelectionConfig
    from lodabench.config.typed import build_config

    node = build_config(SelectionConfig, cfg.get("selection"), "selection")  # unknown keys and types
    if node.rule not in RULES:
        raise ConfigError(f"selection.rule={node.rule!r}: choose one of {', '.join(RULES)}")
    if node.aggregate not in AGGREGATES:
        raise ConfigError(f"selection.aggregate={node.aggregate!r}: choose one of {', '.join(AGGREGATES)}")
    epochs = None if node.epochs is None else list(node.epochs)
    if epochs is not None:
        if not epochs or any(e < 1 for e in epochs):
            raise ConfigError(f"selection.epochs={epochs!r}: a list of epoch numbers >= 1 (e.g. [5,10]), or null")
        epochs = tuple(sorted(set(epochs)))
    return Selection(epochs, node.rule, node.metric, node.aggregate)


def check_against_trainer(sel: Selection, trainer_cfg: Mapping[str, Any]) -> None:
    """What the trainer values alone decide, checked in preflight (before the model loads): every listed
    epoch is kept and within trainer.epochs, and the rule has what it selects on."""
    from lodabench.config.schema import trainer_config

    if sel.epochs is None:
        return
    trainer_cfg = trainer_config(trainer_cfg)
    if not trainer_cfg.keep_epoch_checkpoints:
        raise ConfigError(f"selection.epochs={list(sel.epochs)} scores each listed epoch's checkpoint, which "
                          "trainer.keep_epoch_checkpoints=false does not keep. Fix: set trainer.keep_epoch_checkpoints=true "
                          "(or selection.epochs=null)")
    late = [e for e in sel.epochs if e > trainer_cfg.epochs]
    if late:
        raise ConfigError(f"selection.epochs={list(sel.epochs)}: epoch(s) {late} are never completed (beyond "
                          f"trainer.epochs={trainer_cfg.epochs}). Fix: raise trainer.epochs or list earlier epochs")
    if sel.rule == "dev_loss" and not trainer_cfg.eval_dev_loss:
        raise ConfigError("selection.rule=dev_loss selects on the dev loss, which trainer.eval_dev_loss=false does not "
                          "compute. Fix: set trainer.eval_dev_loss=true (or another selection.rule)")


def check_against_training(sel: Selection, trainer_cfg: Mapping[str, Any], batches_per_epoch: int,
                           total_steps: int) -> None:
    """Every listed epoch must be reached and kept; the rule must have what it selects on."""
    from lodabench.config.schema import trainer_config

    if sel.epochs is None:
        return
    trainer_cfg = trainer_config(trainer_cfg)
    check_against_trainer(sel, trainer_cfg)
    late = [e for e in sel.epochs if e * batches_per_epoch > total_steps]
    if late:
        raise ConfigError(f"selection.epochs={list(sel.epochs)}: epoch(s) {late} are never completed (trainer.epochs="
                          f"{trainer_cfg.epochs}, trainer.max_steps={trainer_cfg.max_steps}, "
                          f"{batches_per_epoch} steps per epoch). Raise trainer.epochs or list earlier epochs.")


def lower_is_better(metric: str) -> bool:
    """By name, for a metric no task spec declares (a scorer's extra keys such as official_TER)."""
    return metric in LOWER_IS_BETTER or metric.endswith("TER")


def pick(sel: Selection, per_epoch: dict[int, dict[str, Any]], dev_loss: Mapping[str, float], metric: str,
         lower: bool | None = None) -> int:
    """The epoch whose numbers the run reports. Ties go to the earlier epoch (fewer steps).

    ``lower``: whether ``metric`` is lower-is-better, as the task spec declares it (the run passes it);
    None falls back to the metric's name (``lower_is_better``)."""
    if sel.rule == "last":
        return max(per_epoch)
    if sel.rule == "dev_loss":
        return _best({e: dev_loss.get(str(e)) for e in per_epoch}, lower=True, what="dev loss")
    if sel.rule == "dev_metric":
        values = {e: (m.get("dev_metrics") or {}).get(metric) for e, m in per_epoch.items()}
    else:
        values = {e: m.get(metric) for e, m in per_epoch.items()}
    lower = lower_is_better(metric) if lower is None else lower
    return _best(values, lower=lower, what=f"{metric} ({sel.rule})")


def _best(values: dict[int, Any], lower: bool, what: str) -> int:
    usable = {e: float(v) for e, v in values.items() if v is not None and math.isfinite(float(v))}
    if not usable:
        raise ConfigError(f"selection: no epoch has a finite {what} to select on: {values}")
    sign = 1.0 if lower else -1.0
    return min(sorted(usable), key=lambda e: sign * usable[e])


def evaluate_epochs(sel: Selection, trainer, state, pipeline, run_dir: Path, metric: str,
                    lower: bool | None = None) -> dict[str, Any]:
    """Score each listed epoch once (``epochs/<e>/metrics.json``), then report the one ``sel`` picks."""
    from lodabench.io import atomic_write_json
    from lodabench.state_files import read_state

    per_epoch: dict[int, dict[str, Any]] = {}
    for epoch in sel.epochs or ():
        out = run_dir / "epochs" / str(epoch)
        done = out / "metrics.json"
        if done.is_file():
            per_epoch[epoch] = read_state(done, "metrics")  # strict JSON, an object: else DataError naming it
            continue
        out.mkdir(parents=True, exist_ok=True)
        trainer.load_weights(trainer.ckpt_dir / f"epoch-{epoch}" / "trainable.safetensors")
        scores = pipeline.evaluate(trainer.model, out)
        if sel.rule == "dev_metric":
            scores["dev_metrics"] = pipeline.evaluate_selection_split(trainer.model, out / "selection_split")
        atomic_write_json(done, scores)
        per_epoch[epoch] = scores
    chosen = pick(sel, per_epoch, state.dev_loss, metric, lower)
    metrics = dict(per_epoch[chosen])
    metrics["selection"] = {
        "rule": sel.rule, "metric": metric, "epochs": list(sel.epochs or ()), "selected_epoch": chosen,
        "selected_on_reported_split": sel.rule == "test" or (
            sel.rule == "dev_metric" and pipeline.selection_split_is_reported()),
        "per_epoch": {str(e): {metric: m.get(metric), "dev_loss": state.dev_loss.get(str(e)),
                               **({"dev_" + metric: (m.get("dev_metrics") or {}).get(metric)}
                                  if sel.rule == "dev_metric" else {})} for e, m in per_epoch.items()},
        "aggregate": sel.aggregate,
    }
    return metrics
