"""What the tables call things, read from the specs: method labels, task labels, metrics.

The facts live on the specs (``MethodSpec.label``/``tex_label``; ``TaskSpec.metrics``, a
``lodabench.tasks.specs.TaskMetrics``: the metrics, their printed scale, the primary one, which are
lower-is-better). What stays here is layout: the order in which the papers' tables list methods and
GLUE tasks, and which tables exist.

A run of a method or task this process does not know (a plugin not loaded) still shows: under its
name, on the record's scale, higher is better.
"""

from __future__ import annotations

from lodabench.errors import LodabenchError
from lodabench.tasks.specs import Metric, TaskMetrics

# LoDA Table 1's row order (then LoRA/DoRA/CondLoRA rows, then the LoDA family); others after these.
METHOD_ORDER = ("ft", "ft_top2", "ft_qv", "bitfit", "adapter_h", "adapter_l", "prefix", "prompt", "lora",
                "condlora", "dora", "loda", "loda_plus", "r_loda", "r_loda_plus", "s_loda", "s_loda_plus")
# LoRA Table 2 / CondLoRA Table 2 column order.
GLUE_ORDER = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")
# The generation tables: LoDA Table 1 (E2E) and Table 2 (DART), stem and title.
GENERATION_TABLES = {"e2e": ("table1_e2e", "LoDA Table 1 layout: E2E NLG Challenge test set"),
                     "dart": ("table2_dart", "LoDA Table 2 layout: DART test set")}


def _method_spec(name: str):
    from lodabench import methods
    try:
        return methods.get_spec(name)
    except LodabenchError:   # a plugin's method not loaded here: its name stands
        return None


def method_label(name: str) -> str:
    """The method's Markdown/CSV label (``MethodSpec.label``; its name when it has none)."""
    spec = _method_spec(name)
    return (spec.label if spec is not None else "") or name


def method_tex_label(name: str) -> str | None:
    """The method's LaTeX label when its spec gives one (``MethodSpec.tex_label``); None: escape the label."""
    spec = _method_spec(name)
    return spec.tex_label if spec is not None and spec.tex_label else None


def task_metrics(data: str) -> TaskMetrics | None:
    """The task's declared metrics (``TaskSpec.metrics``); None for a task this process does not know."""
    from lodabench.tasks.registry import task_names, task_spec
    from lodabench.tasks.specs import metrics_of
    if data not in task_names():
        return None
    try:
        return metrics_of(task_spec(data))
    except LodabenchError:
        return None


def task_label(data: str) -> str:
    declared = task_metrics(data)
    return (declared.label if declared is not None else "") or data


def glue_columns() -> list[tuple[str, str]]:
    """(task, column head) of the GLUE table, in the papers' order."""
    return [(t, task_label(t)) for t in GLUE_ORDER]


def table_metrics(data: str) -> tuple[Metric, ...]:
    """The task's metrics as the paper tables print them: every declared one."""
    declared = task_metrics(data)
    return declared.metrics if declared is not None else ()


def primary_metric(data: str) -> str:
    """The number the papers lead with for ``data``; a LodabenchError for a task no spec declares."""
    declared = task_metrics(data)
    if declared is None:
        raise LodabenchError(f"task {data!r} is not registered here, so its primary metric is unknown. Fix: load "
                             "the plugin that registers it (LODABENCH_PLUGINS)")
    return declared.primary_metric


def claim_metrics(data: str) -> tuple[str, ...]:
    """The metrics a claim over "every metric" reads: a generation table's columns (LoDA Tables 1-2 print
    one per metric); a GLUE task's primary only (the GLUE tables print one column per task)."""
    if data in GENERATION_TABLES:
        return tuple(m.key for m in table_metrics(data))
    return (primary_metric(data),)


def lower_is_better(data: str, metric: str) -> bool:
    declared = task_metrics(data)
    return declared is not None and declared.lower_is_better(metric)


def display_metric(data: str, metric: str) -> tuple[float, int]:
    """(record value -> printed scale, printed decimals) of a metric as our table layout prints it."""
    found = next((m for m in table_metrics(data) if m.key == metric), None)
    return (found.scale, found.decimals) if found is not None else (1.0, 1)


__all__ = ["GENERATION_TABLES", "GLUE_ORDER", "METHOD_ORDER", "claim_metrics", "display_metric", "glue_columns",
           "lower_is_better", "method_label", "method_tex_label", "primary_metric", "table_metrics", "task_label",
           "task_metrics"]
