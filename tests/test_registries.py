"""Task and scorer registries (issue #20): built-ins and plugins enter through register_task /
register_scorer; data configs are typed (errors name data.<key>); the generation pipeline scores
through data.scorer with the same numbers as the official scorers called directly."""

from __future__ import annotations

import copy

import dataclasses
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

import lodabench
from lodabench import plugins
from lodabench.tasks import DataConfig, GenerationTask, Pair, get_task, registry, task_config, task_names
from lodabench.tasks.e2e import E2EDataConfig
from lodabench.errors import ConfigError, DataError
from lodabench.scoring import registry as scoring
from lodabench.config.registry import Registry
from lodabench.config.typed import hp

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILTIN_TASKS = ["e2e", "dart", "cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]


def _pipeline(data: dict):
    """A GenerationPipeline on a config holding only what scoring needs (no model, no tokenizer files)."""
    from lodabench.tasks.generation import GenerationPipeline

    cfg = OmegaConf.create({"data": data, "trainer": {"max_length": 64, "label_smoothing": 0.0}})
    task = get_task(data, REPO_ROOT)  # a generation task's loader reads nothing until asked
    return GenerationPipeline(cfg, task, SimpleNamespace(pad_token_id=0), torch.device("cpu"))


# ----------------------------------------------------------------------------- built-ins


def test_every_builtin_task_and_scorer_is_registered():
    assert task_names()[:len(BUILTIN_TASKS)] == BUILTIN_TASKS
    assert scoring.scorer_names()[:2] == ["e2e", "dart"]
    assert [registry.task_spec(n).pipeline for n in ("e2e", "dart", "rte")] == ["generation", "generation",
                                                                               "classification"]


def _fresh(reg: Registry, register) -> Registry:
    """A registry of ``reg``'s kind with nothing registered yet (no config group: the real one keeps it)."""
    return Registry(reg.kind, attr=reg.attr, register=register, origin=reg.origin, option=reg.option, bulk=reg.bulk,
                    node=reg.node)


def test_builtins_register_through_the_public_functions(monkeypatch):
    seen: list[str] = []
    real = registry.register_task
    monkeypatch.setattr(registry, "register_task", lambda spec, **kw: seen.append(spec.name) or real(spec, **kw))
    monkeypatch.setattr(registry, "TASKS", _fresh(registry.TASKS, lambda spec: registry.register_task(spec)))
    assert registry.task_names() == BUILTIN_TASKS and seen == BUILTIN_TASKS
    assert registry.task_names() == BUILTIN_TASKS and seen == BUILTIN_TASKS  # once
    seen_scorers: list[str] = []
    real_scorer = scoring.register_scorer
    monkeypatch.setattr(scoring, "register_scorer",
                        lambda spec, **kw: seen_scorers.append(spec.name) or real_scorer(spec, **kw))
    monkeypatch.setattr(scoring, "SCORERS", _fresh(scoring.SCORERS, lambda spec: scoring.register_scorer(spec)))
    assert scoring.get_scorer("dart").name == "dart" and seen_scorers == ["e2e", "dart"]


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_data_option_composes_to_the_registered_default(name):
    """``data=<name>`` is the ConfigStore node made from the registry: exactly the registered defaults
    (conf/data/*.yaml were removed once this held for their values, issue #20)."""
    from lodabench.config.schema import compose

    default = dataclasses.asdict(registry.task_spec(name).config)
    assert OmegaConf.to_container(compose([f"data={name}"]).data) == default


def test_added_keys_default_to_what_the_code_used_before():
    assert (E2EDataConfig().scorer, E2EDataConfig().mteval) == ("e2e", "python")
    dart = registry.task_spec("dart").config
    assert (dart.scorer, dart.score_modes, dart.text) == ("dart", ["lora", "official"], "official")


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_registered_defaults_are_structured_configs(name):
    """The Hydra node data/<name> is made from the default instance: OmegaConf must take it as it is."""
    config = registry.task_spec(name).config
    node = OmegaConf.structured(config)
    assert OmegaConf.to_container(node) == dataclasses.asdict(config)
    assert task_config(node) == config
    assert [f.name for f in dataclasses.fields(config) if not f.metadata.get("help")] == []


# ----------------------------------------------------------------------------- data config errors


@pytest.mark.parametrize("cfg, error", [
    ({"name": "sst2", "protocl": "holdout"},
     r"data\.protocl is not a key of data=sst2\. Valid keys: name, max_train_examples, .*protocol"),
    ({"name": "e2e", "max_train_examples": "three"},
     r"data\.max_train_examples='three' has the wrong type: expected int or null \(default None\)"),
    ({"name": "rte", "holdout_fraction": "a tenth"}, r"data\.holdout_fraction='a tenth' has the wrong type: expected float"),
    ({"name": "e2e", "subset_seed": True}, r"data\.subset_seed=True has the wrong type: expected int"),
    ({"name": "dart", "score_modes": "lora"}, r"data\.score_modes='lora' has the wrong type: expected list"),
    ({"name": "rte", "holdout_fraction": 1.5}, r"data\.holdout_fraction=1\.5: must lie in \(0, 1\)"),  # its domain
    ({"name": "e2e", "mteval": "java"}, r"data\.mteval='java' is not one of python, perl\. Fix"),
    ({"name": "dart", "score_modes": ["lora", "bleurt"]}, r"data\.score_modes=\['lora', 'bleurt'\] must be"),
    ({"name": "dart", "score_modes": []}, r"data\.score_modes=\[\] must be a non-empty list"),
    ({"name": "e2e", "scorer": "bleurt"},
     r"data\.scorer='bleurt' is not a known scorer\. Valid names: e2e, dart.*docs/extending\.md"),
    ({"name": "webnlg"}, r"data\.name='webnlg' is not a known task\. Valid names: e2e, dart, cola.*docs/extending\.md"),
    ({"max_train_examples": 3}, r"the data config has no 'name' key"),
])
def test_data_config_errors_name_the_key(cfg, error):
    with pytest.raises(ConfigError, match=error):
        get_task(cfg, None)


def test_values_are_coerced_and_defaults_kept():
    conf = task_config(OmegaConf.create({"name": "dart", "score_modes": ["official"], "max_eval_items": 5}))
    assert (conf.score_modes, conf.max_eval_items, conf.eval_split) == (["official"], 5, "test")
    conf = task_config({"name": "rte", "max_eval_items": None, "max_train_examples": "3"})
    assert conf.max_eval_items is None and conf.max_train_examples == 3  # "3" as on the command line
    assert conf.holdout_fraction == 0.1  # not given: the default (an int for a float field: tests/test_typed.py)


# ----------------------------------------------------------------------------- registration checks


@dataclasses.dataclass
class ToyConfig(DataConfig):
    name: str = hp("toy", "the task")


def _toy_build(conf, root):
    pairs = [Pair("a", "x"), Pair("b", "y"), Pair("a", "z")]
    return GenerationTask(name=conf.name, splits=("train", "test"), loader=lambda split: pairs,
                          slicing=conf.slicing())


@pytest.mark.parametrize("spec, match", [
    ("not a spec", "expected a lodabench.TaskSpec"),
    (lodabench.TaskSpec("Toy-Task", ToyConfig(name="Toy-Task"), _toy_build, "generation"), "must match"),
    (lodabench.TaskSpec("toy", ToyConfig, _toy_build, "generation"), "config must be a dataclass instance"),
    (lodabench.TaskSpec("toy", {"name": "toy"}, _toy_build, "generation"), "config must be a dataclass instance"),
    (lodabench.TaskSpec("other", ToyConfig(), _toy_build, "generation"), "needs a field `name` equal to 'other'"),
    (lodabench.TaskSpec("toy", ToyConfig(), "build", "generation"), "build must be a callable"),
    (lodabench.TaskSpec("toy", ToyConfig(), _toy_build, "seq2seq"), "pipeline='seq2seq' is not one of"),
])
def test_bad_task_specs_fail_at_registration(spec, match):
    with pytest.raises(ConfigError, match=match):
        lodabench.register_task(spec)
    assert "toy" not in task_names()


@pytest.mark.parametrize("spec, match", [
    ("not a spec", "expected a lodabench.ScorerSpec"),
    (lodabench.ScorerSpec("Exact", len, "acc"), "must match"),
    (lodabench.ScorerSpec("exact", "score", "acc"), "must be callables"),
    (lodabench.ScorerSpec("exact", len, "acc", check="check"), "must be callables"),
    (lodabench.ScorerSpec("exact", len, ""), "primary_metric must name"),
])
def test_bad_scorer_specs_fail_at_registration(spec, match):
    with pytest.raises(ConfigError, match=match):
        lodabench.register_scorer(spec)
    assert "exact" not in scoring.scorer_names()


def _exact_match(hyps, refs, conf):
    return {"exact_match": sum(h in group for h, group in zip(hyps, refs)) / len(hyps)}


def test_registered_task_and_scorer_build_score_and_are_removed():
    lodabench.register_task(lodabench.TaskSpec("toy", ToyConfig(), _toy_build, "generation"))
    try:
        with pytest.raises(ConfigError, match="data.scorer='toy' is not a known scorer"):
            get_task({"name": "toy"}, None)  # no scorer field: data.name names it; checked before building
        lodabench.register_scorer(lodabench.ScorerSpec("toy", _exact_match, "exact_match"))
        task = get_task({"name": "toy", "max_eval_items": 1}, None)
        assert task.eval_items("test") == [("a", ["x", "z"])]
        pipeline = _pipeline({"name": "toy"})
        assert pipeline.score(["z", "x"], [["x", "z"], ["y"]]) == {"exact_match": 0.5}
        assert pipeline.primary_metric == "exact_match"
        with pytest.raises(ConfigError, match="task 'toy' is already registered by test_registries"):
            lodabench.register_task(lodabench.TaskSpec("toy", ToyConfig(), _toy_build, "generation"))
    finally:
        registry.unregister_task("toy")
        scoring.unregister_scorer("toy")
    with pytest.raises(ConfigError, match="'toy' is not a known task"):
        get_task({"name": "toy"}, None)
    with pytest.raises(ConfigError, match="'toy' is not a known scorer"):
        scoring.get_scorer("toy")


def test_task_kind_must_match_its_pipeline():
    lodabench.register_task(lodabench.TaskSpec("toy", ToyConfig(), _toy_build, "classification"))
    try:  # a classification task has no scorer: the build is reached
        with pytest.raises(ConfigError, match="built a task of kind 'generation' but registered "
                                              "pipeline='classification'"):
            get_task({"name": "toy"}, None)
    finally:
        registry.unregister_task("toy")


def test_replacing_a_builtin_needs_replace_and_unregister_restores_it():
    builtin = registry.task_spec("rte")
    mine = dataclasses.replace(builtin, description="mine")
    with pytest.raises(ConfigError, match=r"data='rte', a built-in name \(defined in lodabench.tasks.glue\).*replace=True"):
        lodabench.register_task(mine)
    lodabench.register_task(mine, replace=True)
    try:
        assert registry.task_spec("rte") is mine
    finally:
        registry.unregister_task("rte")
    assert registry.task_spec("rte") is builtin
    e2e = scoring.get_scorer("e2e")
    lodabench.register_scorer(dataclasses.replace(e2e, primary_metric="METEOR"), replace=True)
    try:
        assert _pipeline({"name": "e2e"}).primary_metric == "METEOR"
    finally:
        scoring.unregister_scorer("e2e")
    assert scoring.get_scorer("e2e") is e2e and _pipeline({"name": "e2e"}).primary_metric == "BLEU"


# ----------------------------------------------------------------------------- the plugins of docs/extending.md


def _docs_module(path: str) -> str:
    """The python block of docs/extending.md that starts with the comment ``# <path>``."""
    text = (REPO_ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n# " + re.escape(path) + r"\n(.*?)```", text, re.S)
    assert match, f"docs/extending.md has no python block starting with '# {path}'"
    return match.group(1)


DOCS_PLUGINS = ("my_tasks/jsonl_task.py", "my_scorers/sacrebleu_scorer.py")


@pytest.fixture
def docs_plugins(tmp_path, monkeypatch):
    """The task and scorer modules of docs/extending.md, named by LODABENCH_PLUGINS, removed afterwards."""
    for path in DOCS_PLUGINS:
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).parent.joinpath("__init__.py").touch()
        (tmp_path / path).write_text(_docs_module(path), encoding="utf-8")
    modules = [p.removesuffix(".py").replace("/", ".") for p in DOCS_PLUGINS]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, ",".join(modules))
    data = tmp_path / "data" / "jsonl_d2t"
    data.mkdir(parents=True)
    rows = ['{"source": "name : A", "target": "A is here ."}', '{"source": "name : B", "target": "B it is ."}',
            '{"source": "name : A", "target": "Here is A ."}']
    for split in ("train", "dev", "test"):
        (data / f"{split}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    yield tmp_path / "data"
    registry.unregister_task("jsonl_d2t")
    scoring.unregister_scorer("sacrebleu")
    for module in modules:
        sys.modules.pop(module, None)
        plugins._loaded.pop(module, None)
    for package in ("my_tasks", "my_scorers"):
        sys.modules.pop(package, None)


def test_a_lookup_does_not_load_plugins(docs_plugins):
    """Plugins are loaded at the doors only (issue #28): get_task reads what is registered."""
    with pytest.raises(ConfigError, match=r"data\.name='jsonl_d2t' is not a known task"):
        get_task({"name": "jsonl_d2t"}, docs_plugins)
    lodabench.load_plugins()  # the door library code calls (python -m lodabench and compose call it themselves)
    assert get_task({"name": "jsonl_d2t"}, docs_plugins).name == "jsonl_d2t"


def test_docs_plugins_task_builds_from_lodabench_plugins(docs_plugins):
    lodabench.load_plugins()
    task = get_task({"name": "jsonl_d2t"}, docs_plugins)
    assert task.train_pairs("train")[1] == ("name : B", "B it is .")
    assert task.eval_items() == [("name : A", ["A is here .", "Here is A ."]), ("name : B", ["B it is ."])]
    with pytest.raises(ConfigError, match=r"data\.eval_split='valid' for jsonl_d2t"):
        get_task({"name": "jsonl_d2t", "eval_split": "valid"}, docs_plugins)
    with pytest.raises(ConfigError, match=r"data\.sacrebleu_tokenize='zh2' is not one of 13a, intl, none"):
        get_task({"name": "jsonl_d2t", "sacrebleu_tokenize": "zh2"}, docs_plugins)
    (docs_plugins / "jsonl_d2t" / "dev.jsonl").write_text('{"source": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"dev\.jsonl: line 1: expected"):
        task.train_pairs("dev")


def test_docs_plugins_scorer_equals_sacrebleu(docs_plugins):
    import sacrebleu

    from lodabench.tasks.generation import GenerationPipeline

    lodabench.load_plugins()
    data = {"name": "jsonl_d2t", "sacrebleu_tokenize": "intl"}
    cfg = OmegaConf.create({"data": data, "trainer": {"max_length": 64, "label_smoothing": 0.0}})
    pipeline = GenerationPipeline(cfg, get_task(data, docs_plugins), SimpleNamespace(pad_token_id=0),
                                  torch.device("cpu"))
    hyps = ["A is here .", "B is it ."]
    refs = [["A is here .", "Here is A ."], ["B it is ."]]
    expected = sacrebleu.corpus_bleu(hyps, [["A is here .", "B it is ."], ["Here is A .", "B it is ."]],
                                     tokenize="intl").score
    assert pipeline.score(hyps, refs) == {"BLEU": expected} and pipeline.primary_metric == "BLEU"


PLUGIN_RUN = ["model=tiny-gpt2", "data=jsonl_d2t", "method=loda", "trainer.max_steps=2", "trainer.batch_size=2",
              "trainer.warmup_steps=0", "trainer.progress=false", "decoding=greedy", "decoding.max_new_tokens=8",
              "decoding.progress=false"]


def _cli(args, docs_plugins, tmp_path):
    import os
    import subprocess

    from lodabench.paths import REPO_ROOT
    env = {**os.environ, "PYTHONPATH": f"{docs_plugins.parent}{os.pathsep}{REPO_ROOT / 'src'}",
           "LODABENCH_RESULTS_DIR": str(tmp_path / "results"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lodabench", *args, f"paths.data_root={docs_plugins}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_docs_plugins_run_end_to_end_from_the_command_line(docs_plugins, tmp_path):
    """data=jsonl_d2t and its sacrebleu scorer, plugins named by LODABENCH_PLUGINS, with no file under
    src/lodabench naming them: composed, trained, decoded and scored by `python -m lodabench`."""
    import json

    proc = _cli(PLUGIN_RUN, docs_plugins, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = (tmp_path / "results" / "runs" / "jsonl_d2t").rglob("record.json")
    data = json.loads(record.read_text())
    assert data["status"] == "complete" and set(data["metrics"]) >= {"BLEU", "objective"}
    assert data["config"]["data"]["scorer"] == "sacrebleu" and data["config"]["data"]["sacrebleu_tokenize"] == "13a"


@pytest.mark.slow
@pytest.mark.parametrize("bad, says", [("+data.sacrebleu_tokenise=intl", "unknown config key data.sacrebleu_tokenise"),
                                       ("data.sacrebleu_tokenize=zh2", "data.sacrebleu_tokenize='zh2' is not one of")])
def test_docs_plugins_bad_keys_fail_before_training(docs_plugins, tmp_path, bad, says):
    proc = _cli([*PLUGIN_RUN, bad], docs_plugins, tmp_path)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr[-3000:]
    assert not list(tmp_path.rglob("checkpoints"))


# ----------------------------------------------------------------------------- built-in scorers through the pipeline

HYPS = ["The Eagle is a pub near the river .", "Alimentum serves Chinese food in the city centre ."]
REFS = [["The Eagle is a pub by the river .", "There is a pub called The Eagle near the river ."],
        ["Alimentum serves Chinese food .", "Alimentum is a Chinese place in the city centre ."]]


@pytest.mark.java
@pytest.mark.slow
def test_pipeline_scores_e2e_as_score_e2e():
    from lodabench.scoring.e2e import score_e2e_modes

    direct = score_e2e_modes(HYPS, REFS, ("python", "perl"))
    for mteval in ("python", "perl"):
        pipeline = _pipeline({"name": "e2e", "mteval": mteval})
        assert pipeline.score(HYPS, REFS) == direct[mteval]
        assert pipeline.primary_metric == "BLEU"


@pytest.mark.java
def test_pipeline_keeps_an_undefined_nist_as_null_and_says_why():
    scores = _pipeline({"name": "e2e"}).score(["", ""], REFS)
    assert scores["NIST"] is None and set(scores["undefined"]) == {"NIST"}
    assert scores["METEOR"] == 0.0


@pytest.mark.java
@pytest.mark.slow
def test_pipeline_scores_dart_as_score_dart(monkeypatch):
    from lodabench.scoring import dart

    # score_dart itself scores once per mode (its METEOR JVMs are the slow part): what it returned,
    # with the very outputs and references of the pipeline, is what the pipeline must report
    real, calls = dart.score_dart, []

    def recording(hyps, refs, mode="lora"):
        calls.append((list(hyps), [list(g) for g in refs], mode, copy.deepcopy(scores := real(hyps, refs, mode=mode))))
        return scores
    monkeypatch.setattr(dart, "score_dart", recording)
    both = _pipeline({"name": "dart"}).score(HYPS, REFS)
    assert [(h, r, m) for h, r, m, _ in calls] == [(HYPS, REFS, "lora"), (HYPS, REFS, "official")]
    lora, official = calls[0][3], calls[1][3]
    assert set(lora) == {"BLEU", "BLEU_NLTK", "METEOR", "TER"} and set(official) == {"BLEU", "METEOR", "TER"}
    assert both == {**lora, **{f"official_{k}": v for k, v in official.items()}}


def test_pipeline_runs_the_dart_modes_asked_for(monkeypatch):
    from lodabench.scoring import dart

    monkeypatch.setattr(dart, "score_dart", lambda hyps, refs, mode: {"BLEU": {"lora": 1.0, "official": 2.0}[mode]})
    assert _pipeline({"name": "dart", "score_modes": ["official"]}).score(HYPS, REFS) == {"official_BLEU": 2.0}
    assert _pipeline({"name": "dart"}).score(HYPS, REFS) == {"BLEU": 1.0, "official_BLEU": 2.0}
