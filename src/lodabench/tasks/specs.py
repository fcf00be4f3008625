"""The task kinds and the data config keys every task shares.

Two task kinds, one small class each, both built from a ``loader(split)`` that reads one split
(from the local data root, or from the Hugging Face hub when the root is None), and both carrying
``inputs``, the JSON record of what was read (``lodabench.tasks.hub``; the run writes it to
record.json's ``inputs.data``):

* ``GenerationTask`` (e2e, dart): ``train_pairs(split) -> [Pair(source, target)]`` in file order,
  one pair per (input, reference); ``eval_items(split) -> [EvalItem(source, [references])]`` with
  one item per unique *source string* (the text the model sees), in order of first appearance,
  all of its references grouped. Grouping by the source string is what LoRA's
  ``gpt2_decode.py`` does (``refer_dict`` is keyed by the context).
* ``ClassificationTask`` (GLUE): ``rows(split) -> [Row(text_a, text_b|None, label)]``.

Slicing for tests and demos (``DataConfig``, the keys every task's data config has):

* ``max_train_examples``: keep N training pairs/rows (None = all).
* ``max_eval_items``: keep N eval items / eval rows (None = all).
* ``subset``: ``first`` (the first N in file order, the default) or ``random`` (a fixed-seed
  subsample: ``subsample(items, n, subset_seed)`` = ``random.Random(seed).sample`` of the
  indices, then re-sorted so the kept items stay in file order).

Which task a name builds, and the checks of its config, live in ``lodabench.tasks.registry``.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, TypeVar

from lodabench.errors import ConfigError
from lodabench.config.ranges import rng
from lodabench.config.typed import hp

T = TypeVar("T")

#: The hub is used when the data root is None (``lodabench.tasks.hub``: parquet files of
#: ``data.hub_id``, downloaded into the cache root, or read from a local folder given as data.hub_id).
DATA_ROOT_HINT = (
    "Set paths.data_root=<dir> (or the environment variable LODABENCH_DATA_ROOT) to a folder "
    "holding e2e/, dart/ and glue/, or leave both unset to read the Hugging Face hub's parquet files "
    "(data.hub_id, data.hub_revision)"
)


class Pair(NamedTuple):
    """One training example of a generation task: the model input text and one reference."""

    source: str
    target: str


class EvalItem(NamedTuple):
    """One evaluation input with every reference written for it (file order)."""

    source: str
    references: list[str]


class Row(NamedTuple):
    """One classification example; ``label`` is an int class id, or a float for regression."""

    text_a: str
    text_b: str | None
    label: int | float


# --------------------------------------------------------------------------------------------
# helpers shared by the task kinds


class ConvertedRows(Sequence[T]):
    """``[convert(row) for row in rows]``, each row converted when first read.

    E2E's ``data.text=lora`` rewrites every reference as LoRA's files have it (~0.1 ms a row:
    ~4.5 s for the 42,061 training rows), and its MR formatting alone took ~0.4 s a launch; a run
    that keeps ``data.max_train_examples`` rows of a split converts those alone. Same items, same
    order as the list; a converted row is kept."""

    def __init__(self, rows: Sequence[Any], convert: Callable[[Any], T]) -> None:
        self._rows, self._convert = rows, convert
        self._done: list[Any] = [_UNSET] * len(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # negative indices; IndexError as a list's
        if self._done[i] is _UNSET:
            self._done[i] = self._convert(self._rows[i])
        return self._done[i]


_UNSET = object()


def subsample(items: Sequence[T], n: int | None, seed: int) -> list[T]:
    """A fixed-seed subsample of ``n`` items, kept in their original order.

    ``n=None`` or ``n >= len(items)`` returns every item. The choice is
    ``random.Random(seed).sample(range(len(items)), n)``, sorted; it depends only on
    ``(len(items), n, seed)``, so it is stable across runs and machines.
    """
    if n is None or n >= len(items):
        return list(items)
    if n < 0:
        raise ConfigError(f"subsample size must be >= 0, got {n}")
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def holdout_split(items: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Split ``items`` into (fit, held_out) deterministically from ``seed``.

    CondLoRA's GLUE protocol: select models on a held-out ``fraction`` (0.1) of the official
    train split and report the official dev split as the test set. The indices are shuffled
    with ``random.Random(seed)``; the first ``round(len * fraction)`` (at least 1 when there
    are 2 or more items) are held out. Both parts keep the original file order.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.holdout_fraction must be in (0, 1), got {fraction}")
    n = len(items)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = round(n * fraction)
    if n >= 2:
        k = min(max(k, 1), n - 1)
    held = set(order[:k])
    fit = [items[i] for i in range(n) if i not in held]
    held_out = [items[i] for i in range(n) if i in held]
    return fit, held_out


def group_pairs(pairs: Sequence[Pair]) -> list[EvalItem]:
    """One EvalItem per unique source, in order of first appearance, references in file order."""
    grouped: dict[str, list[str]] = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    return [EvalItem(source, refs) for source, refs in grouped.items()]


@dataclass(frozen=True)
class Slicing:
    """The ``max_train_examples`` / ``max_eval_items`` / ``subset`` settings of a data config."""

    max_train_examples: int | None = None
    max_eval_items: int | None = None
    subset: str = "first"
    subset_seed: int = 0

    def __post_init__(self) -> None:
        if self.subset not in ("first", "random"):
            raise ConfigError(f"data.subset must be 'first' or 'random', got {self.subset!r}")
        for key in ("max_train_examples", "max_eval_items"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"data.{key} must be a positive integer or null, got {value!r}")

    def take(self, items: Sequence[T], n: int | None) -> list[T]:
        if n is None:
            return list(items)
        if self.subset == "first":
            return list(items[:n])
        return subsample(items, n, self.subset_seed)


@dataclass
class DataConfig:
    """The keys every task's data config has: its name and the slicing for tests and demos.

    A task's config subclasses it (``E2EDataConfig``, ``DartDataConfig``, ``GlueDataConfig``) and
    gives ``name`` its task's name as default; the registry builds it from ``cfg.data``
    (``lodabench.tasks.registry.task_config``), type-checked, then calls ``validate``.
    """

    name: str = field(metadata={"help": "the task: data=<name> on the command line"})
    max_train_examples: Optional[int] = hp(None, "Slicing for tests/demos: keep the first N training "
                                           "pairs/rows (see subset); null = everything", rng("[1, inf)"))
    max_eval_items: Optional[int] = hp(None, "Slicing for tests/demos: keep N eval items / eval rows "
                                       "(see subset); null = everything", rng("[1, inf)"))
    subset: str = hp("first", "first (first N in file order) or random (fixed-seed subsample with "
                     "subset_seed, kept in file order)")
    subset_seed: int = hp(0, "seed of subset=random: random.Random(subset_seed).sample of the indices",
                          rng("[0, 4294967295]"))

    def slicing(self) -> Slicing:
        """The slicing these keys ask for (``Slicing`` checks subset and the sizes)."""
        return Slicing(self.max_train_examples, self.max_eval_items, self.subset, self.subset_seed)

    def validate(self) -> None:
        self.slicing()


# --------------------------------------------------------------------------------------------
# what a task reports: its metrics, as the records store them and the papers print them


@dataclass(frozen=True)
class Metric:
    """One metric of a task: its key in record.json ``metrics`` and how the papers print it.

    ``scale``/``decimals``: a record value times ``scale``, rounded to ``decimals``, is the number
    the paper table prints (LoDA Table 1 prints E2E BLEU x100 with one decimal; the GLUE scorer
    already returns x100). ``label``/``tex`` head the Markdown/CSV and LaTeX columns ("" = the key).
    """

    key: str
    label: str = ""
    tex: str = ""
    scale: float = 1.0
    decimals: int = 1
    lower_is_better: bool = False

    @property
    def header(self) -> str:
        return self.label or self.key

    @property
    def tex_header(self) -> str:
        return self.tex or self.header


@dataclass(frozen=True)
class TaskMetrics:
    """The one vocabulary of a task's metrics, declared on its ``TaskSpec`` (``metrics=``).

    ``metrics``: the keys the task's scorer returns that the task reports, in the paper table's
    column order; ``primary``: the number the papers lead with ("" = the first metric);
    ``selection``: the metric ``best_dev`` selection and the sweeps maximise (or minimise, when
    lower is better) when ``selection.metric`` is null ("" = primary); ``label``: the task's name
    as the paper tables print it (column head, e.g. "SST-2"; "" = the task name).
    ``register_task`` checks every name against the scorer's keys (``check_task_metrics``).
    """

    metrics: tuple[Metric, ...]
    primary: str = ""
    selection: str = ""
    label: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.metrics)

    @property
    def primary_metric(self) -> str:
        return self.primary or self.metrics[0].key

    @property
    def selection_metric(self) -> str:
        return self.selection or self.primary_metric

    def metric(self, key: str) -> Metric | None:
        return next((m for m in self.metrics if m.key == key), None)

    def lower_is_better(self, key: str) -> bool:
        found = self.metric(key)
        return bool(found and found.lower_is_better)


def check_task_metrics(name: str, declared: TaskMetrics | None, scorer_keys: Sequence[str] | None,
                       scorer: str) -> None:
    """Every metric a task declares (and its primary and selection metric) is a key its scorer returns.

    ``scorer_keys`` None: the scorer declares no keys (a module-level ``METRICS``), so a task that
    declares metrics cannot be checked and is refused. A task that declares none is not checked.
    """
    if declared is None:
        return
    where = f"register_task({name!r})"
    if not declared.metrics:
        raise ConfigError(f"{where}: TaskMetrics lists no metrics. Fix: metrics=TaskMetrics((Metric('<key>'),))")
    if scorer_keys is None:
        raise ConfigError(f"{where}: its scorer {scorer!r} declares no metric keys, so the task's metrics "
                          f"{', '.join(declared.names)} cannot be checked. Fix: give the scorer's module a METRICS "
                          "tuple of the keys it returns (and register the scorer before the task)")
    wanted = (*declared.names, declared.primary_metric, declared.selection_metric)
    for key in dict.fromkeys(wanted):
        if key not in scorer_keys:
            raise ConfigError(f"{where}: metric {key!r} is not among the keys of its scorer {scorer!r}: "
                              f"{', '.join(scorer_keys)}. Fix: declare the scorer's key (its METRICS) in the "
                              "task's TaskMetrics")


def check_spec_metrics(spec: Any) -> None:
    """``register_task``'s check of a spec's ``metrics`` against the keys of the scorer it runs with.

    The scorer is the GLUE scorer's entry for a classification task (``scoring.glue.TASK_METRICS``),
    else the registered scorer its default config names (``data.scorer``, else the task's name) and
    that scorer module's ``METRICS``; it must be registered before the task.
    """
    declared = getattr(spec, "metrics", None)
    if declared is not None:
        scorer, keys = _scorer_keys(spec)
        check_task_metrics(spec.name, declared, keys, scorer)


def _scorer_keys(spec: Any) -> tuple[str, tuple[str, ...] | None]:
    """(the scorer's name, the metric keys it declares, None if it declares none)."""
    if spec.pipeline == "classification":
        from lodabench.scoring.glue import TASK_METRICS
        return "glue", TASK_METRICS.get(spec.name)
    if spec.pipeline != "generation":
        return f"the {spec.pipeline} pipeline", None
    from lodabench.scoring.registry import get_scorer, scorer_names, scorer_of
    name = scorer_of(spec.config)
    if name not in scorer_names():
        raise ConfigError(f"register_task({spec.name!r}): its scorer {name!r} is not registered yet, so its metrics "
                          "cannot be checked. Fix: register_scorer before register_task")
    keys = getattr(importlib.import_module(get_scorer(name).score.__module__), "METRICS", None)
    return name, tuple(keys) if keys is not None else None


def metrics_of(spec: Any) -> TaskMetrics:
    """A task spec's declared metrics; a spec that declares none (an older plugin) reports its
    scorer's primary metric, higher is better."""
    if getattr(spec, "metrics", None) is not None:
        return spec.metrics
    if spec.pipeline == "generation":
        from lodabench.scoring.registry import get_scorer, scorer_of
        return TaskMetrics((Metric(get_scorer(scorer_of(spec.config)).primary_metric),))
    raise ConfigError(f"task {spec.name!r} declares no metrics (TaskSpec.metrics) and its pipeline "
                      f"{spec.pipeline!r} has no scorer to ask. Fix: metrics=TaskMetrics(...)")


# --------------------------------------------------------------------------------------------
# task kinds


def _cached_split(task: Any, split: str) -> list:
    """``task.loader(split)``, read once per task (a split is read when first asked for)."""
    if split not in task.splits:
        raise ConfigError(f"task {task.name!r} has no split {split!r}; valid splits: {', '.join(task.splits)}")
    if split not in task._cache:
        task._cache[split] = task.loader(split)
    return task._cache[split]


@dataclass
class GenerationTask:
    """A data-to-text task: ``loader(split)`` returns every (source, reference) pair of a split."""

    name: str
    splits: tuple[str, ...]
    loader: Callable[[str], list[Pair]] = field(repr=False)
    slicing: Slicing = field(default_factory=Slicing)
    eval_split: str = "test"
    kind: str = "generation"
    inputs: dict[str, Any] = field(default_factory=dict)  # what was read (lodabench.tasks.hub); JSON
    _cache: dict[str, list[Pair]] = field(default_factory=dict, repr=False)

    def _pairs(self, split: str) -> list[Pair]:
        return _cached_split(self, split)

    def train_pairs(self, split: str = "train") -> list[Pair]:
        """Every (source, reference) pair of ``split`` in file order, then ``max_train_examples``."""
        return self.slicing.take(self._pairs(split), self.slicing.max_train_examples)

    def eval_items(self, split: str | None = None) -> list[EvalItem]:
        """Unique sources of ``split`` with grouped references, then ``max_eval_items``."""
        items = group_pairs(self._pairs(split or self.eval_split))
        return self.slicing.take(items, self.slicing.max_eval_items)


@dataclass
class ClassificationTask:
    """A GLUE task: ``loader(split)`` returns the rows of a split.

    ``metric_names`` are the keys ``scoring.glue.glue_metrics`` reports for the task; the first
    is the number the LoRA/CondLoRA papers report (``primary_metric``).
    """

    name: str
    splits: tuple[str, ...]
    label_names: tuple[str, ...] | None
    is_regression: bool
    metric_names: tuple[str, ...]
    loader: Callable[[str], list[Row]] = field(repr=False)
    slicing: Slicing = field(default_factory=Slicing)
    test_splits: tuple[str, ...] = ("dev",)
    protocol: str = "official"
    holdout_fraction: float = 0.1
    kind: str = "classification"
    inputs: dict[str, Any] = field(default_factory=dict)  # what was read (lodabench.tasks.hub); JSON
    _cache: dict[str, list[Row]] = field(default_factory=dict, repr=False)

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names or ())

    @property
    def primary_metric(self) -> str:
        return self.metric_names[0]

    def rows(self, split: str) -> list[Row]:
        """Every row of ``split`` in file order (no slicing: see ``protocol_splits``)."""
        return _cached_split(self, split)

    def protocol_splits(self, seed: int) -> dict[str, Any]:
        """The rows to fit on, to select the checkpoint on, and to report, per ``data.protocol``.

        * ``official``: fit = train, select = the first test split, test = the official dev
          split(s) (what LoRA reports: best dev number).
        * ``holdout`` (CondLoRA): fit = 90% of train, select = the other 10% (``holdout_split``
          with ``seed``), test = the official dev split(s).

        ``max_train_examples`` slices ``fit``; ``max_eval_items`` slices ``select`` and each test
        split. Returns ``{"fit": rows, "select": rows, "test": {split: rows}}``.
        """
        train = self.rows("train")
        if self.protocol == "holdout":
            fit, select = holdout_split(train, self.holdout_fraction, seed)
        else:
            fit, select = train, self.rows(self.test_splits[0])
        take = self.slicing.take
        return {
            "fit": take(fit, self.slicing.max_train_examples),
            "select": take(select, self.slicing.max_eval_items),
            "test": {s: take(self.rows(s), self.slicing.max_eval_items) for s in self.test_splits},
        }


Task = GenerationTask | ClassificationTask


__all__ = [
    "DATA_ROOT_HINT", "ClassificationTask", "DataConfig", "EvalItem", "GenerationTask", "Metric", "Pair", "Row",
    "Slicing", "Task", "TaskMetrics", "check_spec_metrics", "check_task_metrics", "metrics_of", "group_pairs", "holdout_split", "subsample",
]
