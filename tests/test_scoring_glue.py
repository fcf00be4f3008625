"""GLUE metrics equal scikit-learn/scipy (x100) on fixed inputs; bad inputs raise ScoringError."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from lodabench.errors import ScoringError
from lodabench.scoring.glue import TASK_METRICS, glue_metrics

RNG = np.random.default_rng(1234)
BIN_LABELS = RNG.integers(0, 2, size=200)
BIN_PREDS = np.where(RNG.random(200) < 0.8, BIN_LABELS, 1 - BIN_LABELS)  # ~80 % correct
MNLI_LABELS = RNG.integers(0, 3, size=150)
MNLI_PREDS = np.where(RNG.random(150) < 0.7, MNLI_LABELS, (MNLI_LABELS + 1) % 3)
STS_LABELS = RNG.uniform(0, 5, size=120)
STS_PREDS = STS_LABELS + RNG.normal(0, 0.8, size=120)


def test_cola_mcc():
    got = glue_metrics("cola", BIN_PREDS.tolist(), BIN_LABELS.tolist())
    assert got == {"mcc": pytest.approx(100 * matthews_corrcoef(BIN_LABELS, BIN_PREDS), abs=1e-12)}
    assert 0 < got["mcc"] < 100


@pytest.mark.parametrize("task", ["sst2", "qnli", "rte"])
def test_binary_accuracy(task):
    got = glue_metrics(task, BIN_PREDS, BIN_LABELS)
    assert got == {"accuracy": pytest.approx(100 * accuracy_score(BIN_LABELS, BIN_PREDS), abs=1e-12)}


@pytest.mark.parametrize("task", ["mnli", "mnli_mm"])
def test_mnli_accuracy(task):
    got = glue_metrics(task, MNLI_PREDS, MNLI_LABELS)
    assert got["accuracy"] == pytest.approx(100 * float(np.mean(MNLI_PREDS == MNLI_LABELS)), abs=1e-12)


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_accuracy_and_f1(task):
    got = glue_metrics(task, BIN_PREDS, BIN_LABELS)
    assert set(got) == {"accuracy", "f1"}
    assert got["accuracy"] == pytest.approx(100 * accuracy_score(BIN_LABELS, BIN_PREDS), abs=1e-12)
    assert got["f1"] == pytest.approx(100 * f1_score(BIN_LABELS, BIN_PREDS), abs=1e-12)


def test_stsb_correlations():
    got = glue_metrics("stsb", STS_PREDS, STS_LABELS)
    assert got["pearson"] == pytest.approx(100 * pearsonr(STS_PREDS, STS_LABELS)[0], abs=1e-12)
    assert got["spearman"] == pytest.approx(100 * spearmanr(STS_PREDS, STS_LABELS)[0], abs=1e-12)


def test_hand_computed_values():
    # 3 of 4 right; positives: tp=1, fp=0, fn=1 -> f1 = 2/3
    assert glue_metrics("mrpc", [1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx({"accuracy": 75.0, "f1": 200 / 3})
    assert glue_metrics("stsb", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0])["pearson"] == pytest.approx(100.0)


def test_paper_metric_is_one_of_the_task_metrics():
    """The metric the paper tables report (each GLUE task spec's primary) is a key glue_metrics returns."""
    from lodabench.tasks.registry import task_spec
    primaries = {t: task_spec(t).metrics.primary_metric for t in TASK_METRICS if t != "mnli_mm"}
    assert all(metric in TASK_METRICS[task] for task, metric in primaries.items())
    assert primaries["cola"] == "mcc" and primaries["stsb"] == "pearson" and primaries["mrpc"] == "accuracy"


def test_length_mismatch_names_both_counts():
    with pytest.raises(ScoringError, match=r"3 predictions but 4 labels"):
        glue_metrics("sst2", [0, 1, 1], [0, 1, 1, 0])


def test_unknown_task():
    with pytest.raises(ScoringError, match=r"unknown GLUE task 'wnli'"):
        glue_metrics("wnli", [0], [0])


def test_empty_inputs():
    with pytest.raises(ScoringError, match="no predictions"):
        glue_metrics("rte", [], [])
