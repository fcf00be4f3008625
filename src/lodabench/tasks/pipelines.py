"""Pipelines: what a task trains on, how it batches, its loss, and how it is evaluated.

A task names its pipeline kind (``task.kind``: ``generation`` for E2E/DART, ``classification`` for
GLUE); :func:`pipeline_class` looks the kind up in a registry, so the run spine never tests kind
strings and a plugin task of a new kind brings its pipeline with ``register_pipeline`` (``PIPELINES``,
a ``Registry`` of config/registry.py like the methods', tasks' and scorers'). What the
spine (run.py) and model selection (selection.py) call is the :class:`Pipeline` protocol.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from lodabench.config.registry import Registry
from lodabench.errors import ConfigError, DataError


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


@dataclass(frozen=True)
class PipelineSpec:
    """One pipeline kind: tasks whose ``kind`` is ``name`` train and evaluate with ``target``
    ("module:Class", imported on first use so a run loads only its own pipeline's code)."""

    name: str
    target: str


PIPELINES: Registry[PipelineSpec] = Registry(
    "pipeline", attr="BUILTIN_PIPELINES", register=lambda spec: PIPELINES.register(spec), origin=lambda spec: spec.target,
    option=lambda kind: f"pipeline kind {kind!r}", bulk=(__name__,), same=lambda a, b: a.target == b.target)

# The built-in kinds (registered on first use, as every registry's built-ins are).
BUILTIN_PIPELINES = [PipelineSpec("generation", "lodabench.tasks.generation:GenerationPipeline"),
                     PipelineSpec("classification", "lodabench.tasks.classification:ClassificationPipeline")]


def register_pipeline(kind: str, target: str | type, *, replace: bool = False) -> None:
    """Make tasks of ``kind`` train and evaluate with ``target`` (a class or "module:Class").

    A taken kind needs ``replace=True``; a replaced built-in kind is noted for the run's record."""
    where = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    PIPELINES.register(PipelineSpec(kind, where), replace)


def pipeline_kinds() -> list[str]:
    return PIPELINES.names()


def pipeline_class(task: Any) -> type:
    """The pipeline class of ``task`` (by its ``kind``)."""
    kind = getattr(task, "kind", None)
    if kind not in pipeline_kinds():
        raise ConfigError(f"task {getattr(task, 'name', task)!r} has pipeline kind {kind!r}; known kinds: "
                          f"{', '.join(pipeline_kinds())}. A new kind needs register_pipeline (docs/extending.md)")
    module, _, name = PIPELINES.get(kind, str).target.partition(":")
    return getattr(importlib.import_module(module), name)


def require_rows(rows: Any, what: str, fix: str) -> None:
    """A split the run will use must have rows: fail now, naming it, not at the end of training.

    Here, below the run package, because the pipelines' own preflight checks call it."""
    if not rows:
        raise DataError(f"{what} is empty. Fix: {fix}")


__all__ = ["PIPELINES", "Pipeline", "PipelineSpec", "pipeline_class", "pipeline_kinds", "register_pipeline", "require_rows"]
