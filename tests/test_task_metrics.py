"""One vocabulary of metrics (#28): tasks declare their metrics on their spec, checked at registration
against the keys their scorer declares; the tables read the specs (method and task labels, scales)."""

from __future__ import annotations

import dataclasses
import sys
import types

import pytest

import lodabench
from lodabench.errors import ConfigError
from lodabench.results import vocab
from lodabench.scoring import registry as scoring
from lodabench.tasks import registry
from lodabench.tasks.specs import Metric, TaskMetrics, check_spec_metrics


def _replace(name: str, metrics: TaskMetrics) -> None:
    spec = dataclasses.replace(registry.task_spec(name), metrics=metrics)
    try:
        lodabench.register_task(spec, replace=True)
    finally:
        if registry.task_spec(name) is spec:
            registry.unregister_task(name)


@pytest.mark.parametrize("name", registry.task_names())
def test_every_builtin_declares_metrics_its_scorer_returns(name):
    spec = registry.task_spec(name)
    assert spec.metrics is not None and spec.metrics.metrics
    check_spec_metrics(spec)   # what register_task ran when the built-ins were registered


def test_a_builtin_naming_a_key_its_scorer_lacks_is_refused():
    wrong = TaskMetrics((Metric("matthews_correlation"),), label="CoLA")   # the old CoLA name; glue returns mcc
    with pytest.raises(ConfigError, match=r"register_task\('cola'\): metric 'matthews_correlation' is not among the "
                                          r"keys of its scorer 'glue': mcc"):
        _replace("cola", wrong)
    assert registry.task_spec("cola").metrics.selection_metric == "mcc"


def test_primary_and_selection_are_checked_too():
    with pytest.raises(ConfigError, match=r"metric 'TER' is not among the keys of its scorer 'e2e': BLEU, NIST"):
        _replace("e2e", TaskMetrics((Metric("BLEU"),), selection="TER"))


@pytest.fixture
def toy_scorer(monkeypatch):
    """A plugin scorer module declaring its keys (METRICS), registered as data.scorer=toyscore."""
    module = types.ModuleType("toy_scorer_plugin")
    module.METRICS = ("exact", "length")
    module.score = lambda hyps, refs, conf: {"exact": 0.0, "length": 1.0}
    module.score.__module__ = module.__name__
    monkeypatch.setitem(sys.modules, module.__name__, module)
    lodabench.register_scorer(lodabench.ScorerSpec("toyscore", module.score, "exact"))
    yield module
    scoring.unregister_scorer("toyscore")


def _toy_task(metrics: TaskMetrics | None, scorer: str = "toyscore") -> lodabench.TaskSpec:
    from lodabench.tasks.e2e import E2EDataConfig

    @dataclasses.dataclass
    class ToyConfig(E2EDataConfig):
        name: str = "toytask"

    conf = ToyConfig(scorer=scorer)
    return lodabench.TaskSpec("toytask", conf, lambda c, root: None, "generation", metrics=metrics)


def test_plugin_task_metrics_checked_against_its_scorer(toy_scorer):
    with pytest.raises(ConfigError, match=r"register_task\('toytask'\): metric 'BLEU' is not among the keys of its "
                                          r"scorer 'toyscore': exact, length"):
        lodabench.register_task(_toy_task(TaskMetrics((Metric("exact"), Metric("BLEU")))))
    assert "toytask" not in registry.task_names()
    spec = lodabench.register_task(_toy_task(TaskMetrics((Metric("exact"), Metric("length", lower_is_better=True)))))
    try:
        assert vocab.lower_is_better("toytask", "length") and vocab.primary_metric("toytask") == "exact"
    finally:
        registry.unregister_task(spec.name)


def test_plugin_task_whose_scorer_is_unknown_or_undeclared(toy_scorer):
    with pytest.raises(ConfigError, match=r"its scorer 'nosuch' is not registered yet.*register_scorer before"):
        lodabench.register_task(_toy_task(TaskMetrics((Metric("exact"),)), scorer="nosuch"))
    del toy_scorer.METRICS
    with pytest.raises(ConfigError, match=r"its scorer 'toyscore' declares no metric keys.*METRICS"):
        lodabench.register_task(_toy_task(TaskMetrics((Metric("exact"),))))
    spec = lodabench.register_task(_toy_task(None))   # declares nothing: not checked, reports the scorer's primary
    try:
        assert vocab.task_metrics("toytask").names == ("exact",)
    finally:
        registry.unregister_task(spec.name)


def test_tables_read_labels_and_scales_from_the_specs():
    assert vocab.method_label("ft_top2") == "FT^Top2" and vocab.method_tex_label("ft_top2") == r"FT$^{\mathrm{Top2}}$"
    assert vocab.method_label("lora") == "LoRA" and vocab.method_tex_label("lora") is None
    assert vocab.method_label("untuned") == "untuned"            # not a method: its name stands
    assert [h for _, h in vocab.glue_columns()] == ["MNLI", "SST-2", "MRPC", "CoLA", "QNLI", "QQP", "RTE", "STS-B"]
    assert vocab.display_metric("e2e", "BLEU") == (100, 1) and vocab.display_metric("dart", "TER") == (1.0, 2)
    assert vocab.lower_is_better("dart", "TER") and not vocab.lower_is_better("e2e", "BLEU")
    assert vocab.claim_metrics("dart") == ("BLEU", "METEOR", "TER") and vocab.claim_metrics("mrpc") == ("accuracy",)
