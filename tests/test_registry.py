"""The one Registry (issue #28, config/registry.py): methods, tasks, scorers and pipeline kinds share it;
registering a method or a task stores its Hydra node (no store_schema call between), unregistering a
replacement stores the built-in's node again; lookups never load plugins."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import lodabench
from lodabench import methods
from lodabench.config.registry import Registry
from lodabench.config.schema import compose
from lodabench.errors import ConfigError
from lodabench.methods.base import LoRAStyleConfig, hp
from lodabench.scoring import registry as scoring
from lodabench.tasks import pipelines, registry


@dataclass
class _NodeConfig(LoRAStyleConfig):
    name: str = hp("node_lora", "config name of the method")
    r: int = hp(3, "a default other than LoRAStyleConfig's, to see it in the node")


def _node(group: str, name: str):
    return ConfigStore.instance().load(f"{group}/{name}.yaml").node


def test_every_kind_is_one_registry():
    kinds = {reg.kind: reg for reg in (methods.METHODS, registry.TASKS, scoring.SCORERS, pipelines.PIPELINES)}
    assert list(kinds) == ["method", "task", "scorer", "pipeline"]
    assert all(isinstance(reg, Registry) for reg in kinds.values())


def test_registering_a_method_stores_its_node():
    from lodabench.methods import lora

    lodabench.register_method(lodabench.MethodSpec("node_lora", _NodeConfig, lora.apply, lora.merge))
    try:
        assert _node("method", "node_lora").r == 3
        assert compose(["method=node_lora", "method.r=5"]).method.r == 5
    finally:
        methods.unregister_method("node_lora")
    assert "node_lora" not in methods.method_names()


def test_replacing_a_task_restores_the_builtin_node_on_unregister():
    builtin = registry.task_spec("rte")
    mine = dataclasses.replace(builtin, config=dataclasses.replace(builtin.config, holdout_fraction=0.25))
    lodabench.register_task(mine, replace=True)
    try:
        assert _node("data", "rte").holdout_fraction == 0.25
    finally:
        registry.unregister_task("rte")
    assert _node("data", "rte").holdout_fraction == builtin.config.holdout_fraction != 0.25
    assert OmegaConf.to_container(compose(["data=rte"]).data) == dataclasses.asdict(builtin.config)


def test_an_unknown_name_lists_the_registered_ones_and_loads_no_plugin(monkeypatch):
    from lodabench.config import plugin_loader

    monkeypatch.setattr(plugin_loader, "load_plugins", lambda: pytest.fail("a lookup loaded the plugins"))
    with pytest.raises(ConfigError, match=r"method='nope' is not a known method\. Valid names: ft, ft_top2"):
        methods.get_spec("nope")
    with pytest.raises(ConfigError, match=r"data.scorer='nope' is not a known scorer\. Valid names: e2e, dart"):
        scoring.get_scorer("nope")
    with pytest.raises(ConfigError, match=r"pipeline kind 'nope'; known kinds: generation, classification"):
        pipelines.pipeline_class(type("T", (), {"kind": "nope", "name": "t"})())


def test_a_builtin_kind_registered_again_is_no_longer_listed_as_replaced(monkeypatch):
    from lodabench import plugins

    pipelines.PIPELINES.names()
    monkeypatch.setattr(pipelines.PIPELINES, "specs", dict(pipelines.PIPELINES.specs))
    monkeypatch.setattr(pipelines.PIPELINES, "modules", dict(pipelines.PIPELINES.modules))
    monkeypatch.setattr("lodabench.config.replacements.REPLACED", {})
    pipelines.register_pipeline("classification", "my_mod:MyPipeline", replace=True)
    assert [r["name"] for r in plugins.replaced_builtins()] == ["classification"]
    pipelines.register_pipeline("classification", "lodabench.tasks.classification:ClassificationPipeline",
                                replace=True)
    assert plugins.replaced_builtins() == []
