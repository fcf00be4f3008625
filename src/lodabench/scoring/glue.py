"""GLUE dev-set metrics as the PEFT papers report them (LoRA, DoRA, adapters tables).

``glue_metrics(task, predictions, labels)`` returns the task's metrics **multiplied by 100**, the
way the papers print them (e.g. ``{"accuracy": 87.5}``), computed with scikit-learn / scipy:

=========================  ==============================  ======================
task                       metrics                         paper column
=========================  ==============================  ======================
cola                       mcc (Matthews corr.)            mcc
sst2, qnli, rte,           accuracy                        accuracy
mnli, mnli_mm
mrpc, qqp                  accuracy, f1 (positive = 1)     accuracy (LoRA/RoBERTa
                                                           tables report accuracy)
stsb                       pearson, spearman               pearson
=========================  ==============================  ======================

``TASK_METRICS[task]`` declares the keys returned (what ``register_task`` checks a GLUE task's declared
metrics against); which one the paper tables report is the task's ``TaskMetrics.primary_metric``
(``lodabench.tasks.glue``). Every value is on the 0-100 scale.
Classification predictions/labels are class ids; STS-B predictions/labels are real scores.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lodabench.errors import ScoringError

# The keys glue_metrics returns per task: the scorer's declared keys.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "stsb": ("pearson", "spearman"),
    "mnli": ("accuracy",),
    "mnli_mm": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
}

SCALE = 100.0  # papers print percentages / correlations x 100


def glue_metrics(task: str, predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """Metrics of ``TASK_METRICS[task]``, each x100 (see the module docstring)."""
    if task not in TASK_METRICS:
        raise ScoringError(f"unknown GLUE task {task!r}: expected one of {', '.join(TASK_METRICS)}.")
    preds = np.asarray(predictions)
    gold = np.asarray(labels)
    if preds.shape[0] != gold.shape[0]:
        raise ScoringError(
            f"GLUE {task}: {preds.shape[0]} predictions but {gold.shape[0]} labels; they must be aligned one to one."
        )
    if preds.shape[0] == 0:
        raise ScoringError(f"GLUE {task}: no predictions to score.")

    if task == "stsb":
        from scipy.stats import pearsonr, spearmanr

        preds, gold = preds.astype(float), gold.astype(float)
        return {
            "pearson": SCALE * float(pearsonr(preds, gold)[0]),
            "spearman": SCALE * float(spearmanr(preds, gold)[0]),
        }

    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    out: dict[str, float] = {}
    for name in TASK_METRICS[task]:
        if name == "accuracy":
            out[name] = SCALE * float(accuracy_score(gold, preds))
        elif name == "f1":
            out[name] = SCALE * float(f1_score(gold, preds))
        elif name == "mcc":
            out[name] = SCALE * float(matthews_corrcoef(gold, preds))
    return out
