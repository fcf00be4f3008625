"""Selection protocols (issue #19): several epochs evaluated in one run, the papers' rules as config,
the LoDA overlays' rule, and the Optuna search as CondLoRA ran it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lodabench.errors import ConfigError
from lodabench.paths import CONF_DIR, REPO_ROOT
from lodabench.train.selection import Selection, pick, selection_config
from runs_helpers import TINY_E2E, run_cli_here, run_dirs

# 16 training examples at batch 8: 2 optimizer steps per epoch, 2 epochs.
TWO_EPOCHS = [*[a for a in TINY_E2E if not a.startswith(("trainer.max_steps", "data.max_train_examples"))],
              "data.max_train_examples=16", "trainer.epochs=2"]


def test_selection_config_refuses_bad_values():
    with pytest.raises(ConfigError, match="selection.rule='best'"):
        selection_config({"selection": {"rule": "best"}})
    with pytest.raises(ConfigError, match=r"selection.epochs\[0\]=0"):  # the field's domain (config/ranges.py)
        selection_config({"selection": {"epochs": [0]}})
    with pytest.raises(ConfigError, match="selection.aggregate"):
        selection_config({"selection": {"aggregate": "max"}})
    with pytest.raises(ConfigError, match="selection.epoch"):
        selection_config({"selection": {"epoch": [5]}})
    assert selection_config({"selection": {"epochs": [10, 5, 5], "rule": "test"}}).epochs == (5, 10)


def test_pick_follows_each_rule():
    per = {5: {"BLEU": 70.1, "TER": 0.45, "dev_metrics": {"BLEU": 69.0}},
           10: {"BLEU": 70.4, "TER": 0.47, "dev_metrics": {"BLEU": 68.0}}}
    dev_loss = {"5": 1.20, "10": 1.25}
    sel = lambda rule: Selection((5, 10), rule, None, "mean")  # noqa: E731
    assert pick(sel("last"), per, dev_loss, "BLEU") == 10
    assert pick(sel("test"), per, dev_loss, "BLEU") == 10          # LoDA §3: the better test BLEU
    assert pick(sel("test"), per, dev_loss, "TER") == 5            # TER: lower is better
    assert pick(sel("dev_loss"), per, dev_loss, "BLEU") == 5
    assert pick(sel("dev_metric"), per, dev_loss, "BLEU") == 5
    tie = {5: {"BLEU": 70.0}, 10: {"BLEU": 70.0}}
    assert pick(sel("test"), tie, dev_loss, "BLEU") == 5           # ties: the earlier epoch


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg


@pytest.mark.parametrize("experiment", ["e2e_r_loda_r300", "e2e_s_loda_plus_p05", "dart_r_loda_plus_r500",
                                        "dart_s_loda_p04"])
def test_loda_approx_overlays_use_the_papers_rule(experiment):
    cfg = _compose([f"experiment={experiment}"])
    assert cfg.trainer.epochs == 10 and list(cfg.selection.epochs) == [5, 10] and cfg.selection.rule == "test"


def test_dart_lora_family_trains_ten_epochs():
    for experiment in ("dart_lora", "dart_loda", "dart_loda_plus"):
        cfg = _compose([f"experiment={experiment}"])
        assert cfg.trainer.epochs == 10 and cfg.selection.epochs is None


def test_condlora_overlays_ship_the_authors_search_space():
    cfg = _compose(["experiment=glue_condlora_rte"])
    assert dict(cfg.search.space) == {"trainer.lr": "tag(log, interval(5e-5, 5e-3))"}
    assert cfg.search.n_trials == 5 and cfg.search.direction == "maximize"


@pytest.mark.slow
def test_two_epochs_scored_in_one_run_and_selected_on_test(tmp_path, data_root, gpt2_tokenizer_dir):
    results = tmp_path / "results"
    run_cli_here([*TWO_EPOCHS, "selection.epochs=[1,2]", "selection.rule=test"], results)
    (run_dir,) = run_dirs(results)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    sel = metrics["selection"]
    per = {e: json.loads((run_dir / "epochs" / str(e) / "metrics.json").read_text()) for e in (1, 2)}
    best = max((1, 2), key=lambda e: (per[e]["BLEU"], -e))
    assert sel["selected_epoch"] == best and sel["selected_on_reported_split"] is True
    assert metrics["BLEU"] == per[best]["BLEU"] and metrics["objective"] == per[best]["BLEU"]
    assert all((run_dir / "epochs" / str(e) / "hyp.txt").is_file() for e in (1, 2))
    record = json.loads((run_dir / "record.json").read_text())
    assert record["config"]["selection"]["rule"] == "test"
    proc = run_cli_here([*TWO_EPOCHS, "selection.epochs=[1,2]", "selection.rule=test"], results)  # a skip: in process
    assert "skip (complete)" in proc.stdout


def test_unreachable_epoch_refused_before_training(tmp_path, data_root, gpt2_tokenizer_dir):
    results = tmp_path / "results"
    proc = run_cli_here([*TWO_EPOCHS, "selection.epochs=[3]"], results, check=False)
    assert proc.returncode == 2 and "epoch(s) [3] are never completed" in proc.stderr
    assert not list(results.rglob("checkpoints"))


@pytest.mark.slow
def test_optuna_search_runs_records_and_relaunch_skips(tmp_path, data_root):
    """The issue's bar: a tiny Optuna sweep over the CondLoRA overlay's search space."""
    results = tmp_path / "results"
    args = ["-m", "experiment=glue_condlora_rte", "model=tiny-roberta", "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=2", "trainer.epochs=1", "data.max_train_examples=64", "data.max_eval_items=32",
            "trainer.max_length=64", "trainer.progress=false"]
    first = run_cli_here(args, results)
    best = yaml.safe_load((results / "runs" / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"trainer.lr"} and 5e-5 <= best["best_params"]["trainer.lr"] <= 5e-3
    assert first.stdout.count("[lodabench] complete") == 2
    again = run_cli_here(args, results)  # both trials skip: in this process (no fresh interpreter's imports)
    assert again.stdout.count("[lodabench] skip (complete)") == 2 and "[lodabench] complete" not in again.stdout
    listing = subprocess.run([sys.executable, "scripts/sweep_list.py", "optuna", str(results / "runs")], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert listing.count("trial ") == 2 and "trainer.lr=" in listing and "[complete]" in listing


def test_tables_use_the_recorded_aggregate_and_flag_selection_on_test(tmp_path):
    """selection.aggregate=median makes the cell the median over seeds (LoRA's GLUE rule); a run that
    chose its checkpoint on the reported split gets ‡ and the table's footnote says so."""
    from lodabench.results import tables
    runs = tmp_path / "runs"
    for seed, bleu in ((110, 0.70), (111, 0.71), (112, 0.90)):
        d = runs / "e2e" / "gpt2-medium" / "r_loda" / "experiment=e2e_r_loda_r300" / f"seed{seed}"
        d.mkdir(parents=True)
        cfg = {"seed": seed, "data": {"name": "e2e"}, "model": {"name": "gpt2-medium"},
               "method": {"name": "r_loda", "r": 4, "rank": 300}, "selection": {"aggregate": "median"}}
        metrics = {"BLEU": bleu, "selection": {"rule": "test", "selected_on_reported_split": True}}
        (d / "record.json").write_text(json.dumps({"status": "complete", "config": cfg, "seed": seed,
                                                   "metrics": metrics, "trainable_params": {"trainable": 1}}))
    (row,) = tables.load_runs(runs)
    cell = tables.make_cell(row, "BLEU", 100.0, 1)
    assert cell.mean == pytest.approx(71.0) and "(median)" in cell.text and cell.text.endswith("‡")
    assert any("selected on the reported (test) split" in n for n in tables._footnotes([row]))


def test_pick_reads_the_declared_direction_before_the_name():
    """The task spec's lower_is_better (TaskSpec.metrics) decides; the name is only the fallback."""
    per = {5: {"length": 3.0, "TER": 0.45}, 10: {"length": 2.0, "TER": 0.47}}
    sel = Selection((5, 10), "test", None, "mean")
    assert pick(sel, per, {}, "length") == 5                 # undeclared, by name: higher is better
    assert pick(sel, per, {}, "length", lower=True) == 10    # declared lower-is-better
    assert pick(sel, per, {}, "TER", lower=False) == 10      # a declaration overrides the name


def test_the_run_takes_the_direction_from_the_task_spec():
    from types import SimpleNamespace

    from lodabench.run.preflight import declared_metrics
    from lodabench.run.spine import declared_lower

    def plan(task):  # the spec's metrics, as preflight puts them on the Plan
        return SimpleNamespace(data=SimpleNamespace(name=task), metrics=declared_metrics(task))

    assert declared_lower(plan("dart"), "TER") is True
    assert declared_lower(plan("e2e"), "BLEU") is False
    assert declared_lower(plan("cola"), "mcc") is False
    assert declared_lower(plan("dart"), "official_TER") is None   # a scorer extra: the name decides


def test_selection_reads_the_declared_selection_metric_not_the_primary():
    """A task whose primary metric (the tables' lead) differs from its selection metric selects on the
    selection one: the spec is the one source; the pipeline's primary_metric is not read."""
    from types import SimpleNamespace

    import torch

    from lodabench.run.spine import Built, evaluate, selection_metric
    from lodabench.tasks.specs import Metric, TaskMetrics

    declared = TaskMetrics((Metric("acc"), Metric("f1")), primary="acc", selection="f1")

    class Pipeline:
        primary_metric = "acc"  # what selection read before

        def evaluate(self, model, run_dir):
            return {"acc": 0.9, "f1": 0.4}

        def objective(self, model, metrics):
            return metrics, "reported"

    plan = SimpleNamespace(selection=Selection(None, "last", None, "mean"), metrics=declared, eval_checkpoint="last",
                           method_spec=SimpleNamespace(after_training=None), data=SimpleNamespace(name="x"))
    trainer = SimpleNamespace(model=torch.nn.Linear(2, 2))
    state = SimpleNamespace(global_step=3, dev_loss={})
    metrics = evaluate(plan, Built(Pipeline(), trainer), state, None, SimpleNamespace(update=lambda **_: None))
    assert (metrics["objective_metric"], metrics["objective"]) == ("f1", 0.4)
    no_spec = SimpleNamespace(selection=plan.selection, metrics=None)
    assert selection_metric(no_spec, Pipeline()) == "acc"  # a task declaring nothing: the pipeline's
    chosen = SimpleNamespace(selection=Selection(None, "last", "acc", "mean"), metrics=declared)
    assert selection_metric(chosen, Pipeline()) == "acc"   # selection.metric set: it wins
