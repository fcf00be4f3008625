"""Pipelines: what a task trains on, how it batches, its loss, and how it is evaluated.

A task names its pipeline kind (``task.kind``: ``generation`` for E2E/DART, ``classification`` for
GLUE); :func:`pipeline_class` looks the kind up in a registry, so the run spine never tests kind
strings and a plugin task of a new kind brings its pipeline with ``register_pipeline``. What the
spine (run.py) and model selection (selection.py) call is the :class:`Pipeline` protocol.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

import torch

from lodabench.errors import ConfigError


class Pipeline(Protocol):
    """What run.py and selection.py need from a task kind (GenerationPipeline, ClassificationPipeline)."""

    model_kind: str        # which model head load_model builds: causal_lm | sequence_classification
    primary_metric: str    # the tables' main metric; selection.metric=null selects on it

    def __init__(self, cfg: Any, task: Any, tokenizer: Any, device: torch.device) -> None: ...

    @classmethod
    def preflight(cls, cfg: Any, task: Any) -> None:
        """Check everything evaluation will need (decoding, scorer, splits, references) before training."""

    def train_examples(self) -> list[Any]: ...
    def collate(self, examples: list[Any]) -> dict[str, torch.Tensor]: ...
    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...
    def dev_loss(self, model: torch.nn.Module) -> float: ...
    def evaluate(self, model: torch.nn.Module, run_dir: Path) -> dict[str, Any]: ...
    def evaluate_selection_split(self, model: torch.nn.Module, out_dir: Path) -> dict[str, Any]: ...
    def selection_split_is_reported(self) -> bool: ...

    def objective(self, model: torch.nn.Module, reported: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(metrics to take the search objective from, which split they are: selection | reported)."""


# kind -> "module:Class"; imported on first use so a run loads only its own pipeline's code.
_PIPELINES: dict[str, str] = {
    "generation": "lodabench.tasks.generation:GenerationPipeline",
    "classification": "lodabench.tasks.classification:ClassificationPipeline",
}


_BUILTIN_PIPELINES = dict(_PIPELINES)


def register_pipeline(kind: str, target: str | type, *, replace: bool = False) -> None:
    """Make tasks of ``kind`` train and evaluate with ``target`` (a class or "module:Class").

    A taken kind needs ``replace=True``; a replaced built-in kind is noted for the run's record."""
    from lodabench.config import replacements
    where = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    builtin = _BUILTIN_PIPELINES.get(kind)
    if kind in _PIPELINES and _PIPELINES[kind] != where and not replace:
        raise _taken(kind, where, builtin)
    if builtin is not None and builtin != where:
        replacements.note_replaced("pipeline", kind, builtin, where)
    _PIPELINES[kind] = where


def _taken(kind: str, where: str, builtin: str | None) -> ConfigError:
    """The refusal of a taken kind: a built-in's names the plugin and replace=True, as every registry does."""
    from lodabench.config import replacements
    if builtin is not None:
        return replacements.refuse_builtin_name(f"pipeline kind {kind!r}", builtin, where, "register_pipeline")
    return ConfigError(f"register_pipeline: kind {kind!r} is taken by {_PIPELINES[kind]}; {replacements.registrant(where)} "
                       "registers it again. Fix: pass replace=True to override it on purpose, or use another kind")


def pipeline_kinds() -> list[str]:
    return list(_PIPELINES)


def pipeline_class(task: Any) -> type:
    """The pipeline class of ``task`` (by its ``kind``)."""
    target = _PIPELINES.get(getattr(task, "kind", None))
    if target is None:
        raise ConfigError(f"task {getattr(task, 'name', task)!r} has pipeline kind {getattr(task, 'kind', None)!r}; "
                          f"known kinds: {', '.join(_PIPELINES)}. A new kind needs register_pipeline (docs/extending.md)")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["Pipeline", "pipeline_class", "pipeline_kinds", "register_pipeline"]
