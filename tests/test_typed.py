"""One typing path (issue #28): every config group becomes its dataclass through
lodabench.config.typed.build_config, and preflight hands the run down as one frozen, typed Plan."""

from __future__ import annotations

import dataclasses

import pytest

from lodabench.config.schema import ModelConfig, TrainerConfig, compose, trainer_config
from lodabench.config.typed import build_config
from lodabench.errors import ConfigError
from lodabench.models.pretrained import model_description
from lodabench.tasks.decoding import DecodingConfig, decoding_config


def test_every_group_is_its_dataclass():
    cfg = compose(["model=tiny-gpt2", "method=lora", "trainer.lr=0.001"])
    trainer = trainer_config(cfg.trainer)
    assert type(trainer) is TrainerConfig and trainer.lr == 0.001
    assert type(model_description(cfg.model)) is ModelConfig
    assert type(decoding_config(cfg.decoding)) is DecodingConfig


def test_a_typed_group_is_not_typed_again():
    trainer = trainer_config({"epochs": 2})
    assert build_config(TrainerConfig, trainer, "trainer") is trainer
    assert trainer_config(trainer) is trainer


@pytest.mark.parametrize("group,values,match", [
    ("trainer", {"lrr": 1}, r"trainer\.lrr is not a key of trainer\. Valid keys: optimizer, lr"),
    ("trainer", {"lr": "abc"}, r"trainer\.lr='abc' has the wrong type: expected float"),
    ("trainer", {"weight_decay": -1.0}, r"trainer\.weight_decay=-1\.0"),
    ("model", {"name": "m", "kind": [3]}, r"model\.kind=\[3\] has the wrong type: expected str"),
    ("trainer", {"epochs": True}, r"trainer\.epochs=True has the wrong type: expected int"),
])
def test_the_one_path_names_group_and_key(group, values, match):
    cls = {"trainer": TrainerConfig, "model": ModelConfig}[group]
    with pytest.raises(ConfigError, match=match):
        build_config(cls, values, group)


def test_values_from_code_are_converted_as_on_the_command_line():
    """build_config and a composed run share OmegaConf's conversions: the same value gives the same
    typed config whichever door it came through."""
    from omegaconf import OmegaConf

    from lodabench.methods.lora import LoRAConfig

    given = {"name": "lora", "r": "8", "alpha": 16, "dropout": "0.05", "targets": ["q", "k"]}
    code = build_config(LoRAConfig, given, "method")
    composed = OmegaConf.to_object(compose(["model=tiny-gpt2", "method=lora", "method.r='8'", "method.alpha=16",
                                            "method.dropout='0.05'", "method.targets=[q,k]"]).method)
    assert (code.r, code.alpha, code.dropout, code.targets) == (8, 16.0, 0.05, ("q", "k"))
    assert (composed.r, composed.alpha, composed.dropout, list(composed.targets)) == (8, 16.0, 0.05, ["q", "k"])
    assert type(code.alpha) is float and type(code.targets) is tuple


def test_a_frozen_class_is_typed_through_its_mirror_and_built_as_itself():
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        name: str = "frozen_probe"
        k: int = 1
        keys: tuple = ("a",)

        def __post_init__(self):
            if self.k > 9:
                raise ConfigError("k too large")

    conf = build_config(Frozen, {"k": "3", "keys": ["b", "c"]}, "probe")
    assert type(conf) is Frozen and (conf.k, conf.keys) == (3, ("b", "c"))
    with pytest.raises(ConfigError, match=r"probe\.k='x' has the wrong type: expected int"):
        build_config(Frozen, {"k": "x"}, "probe")
    with pytest.raises(ConfigError, match="k too large"):
        build_config(Frozen, {"k": 10}, "probe")


def test_preflight_returns_a_frozen_typed_plan(data_root):
    from lodabench.run.preflight import Plan, preflight
    from lodabench.train.selection import Selection

    cfg = compose(["model=tiny-gpt2", "method=lora", "method.r=8", "data.max_eval_items=6",
                   f"paths.data_root={data_root}"])
    plan = preflight(cfg)
    assert isinstance(plan, Plan)
    assert (plan.method.name, plan.method.r, plan.method_spec.name) == ("lora", 8, "lora")
    assert type(plan.trainer) is TrainerConfig and type(plan.model) is ModelConfig
    assert type(plan.decoding) is DecodingConfig and isinstance(plan.selection, Selection)
    assert plan.data.name == "e2e" and plan.scorer is not None and plan.seed == 110
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 1  # type: ignore[misc]


def test_the_method_node_is_the_methods_own_dataclass():
    """Hydra's method=<name> node is the registered config dataclass itself (not a mirror of it), so
    OmegaConf.to_object gives the method's own type and its validate() runs on it."""
    from omegaconf import OmegaConf

    from lodabench import methods
    from lodabench.methods.lora import LoRAConfig

    conf = OmegaConf.to_object(compose(["model=tiny-gpt2", "method=lora", "method.r=8"]).method)
    assert type(conf) is LoRAConfig and conf.r == 8
    conf.validate()
    for name in methods.method_names():  # every built-in: no mirror left in the method group
        node = OmegaConf.to_object(compose(["model=tiny-gpt2", f"method={name}"]).method)
        assert type(node) is methods.get_spec(name).config_cls


def test_a_frozen_option_class_gets_a_mirror():
    """A frozen dataclass cannot take Hydra's merges: store_option mirrors it (under <group>__<name>)."""
    from lodabench.config import schema

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        name: str = "frozen_probe"
        k: int = 1

    schema.store_option("probe_group", "frozen_probe", Frozen)
    node = schema.node_class("probe_group__frozen_probe")
    assert node is not Frozen and node.__name__ == "probe_group__frozen_probe"
    assert [f.name for f in dataclasses.fields(node)] == ["name", "k"]


def test_preflight_hands_down_typed_objects_not_typed_again(monkeypatch, data_root):
    """The Plan's data config reaches the task builder as the object preflight validated: nothing
    below types or validates it again (tasks.registry.build_task)."""
    from lodabench.run.preflight import preflight
    from lodabench.tasks import registry

    calls = []
    real = registry.task_config
    monkeypatch.setattr(registry, "task_config", lambda values: calls.append(values) or real(values))
    plan = preflight(compose(["model=tiny-gpt2", "method=lora", "data=e2e", "data.max_eval_items=4",
                              f"paths.data_root={data_root}"]))
    assert len(calls) == 1 and plan.task is not None
    assert type(plan.method).__name__ == "LoRAConfig" and plan.metrics.selection_metric == "BLEU"


def test_a_frozen_plugin_method_reaches_the_plan_as_its_own_class(data_root):
    """Hydra composes a frozen plugin config through its mirror; preflight hands down the class itself."""
    import lodabench
    from lodabench import methods
    from lodabench.methods.base import MethodSpec
    from lodabench.methods.lora import LoRAConfig, apply as lora_apply
    from lodabench.run.preflight import preflight

    @dataclasses.dataclass(frozen=True)
    class FrozenLoRA:
        name: str = "frozen_lora"
        r: int = 2
        targets: tuple = ("q", "v")

    lodabench.register_method(MethodSpec("frozen_lora", FrozenLoRA, lambda m, c: lora_apply(m, LoRAConfig(r=c.r))))
    try:
        plan = preflight(compose(["model=tiny-gpt2", "method=frozen_lora", "method.r=3", "data.max_eval_items=4",
                                  f"paths.data_root={data_root}"]))
        assert type(plan.method) is FrozenLoRA and (plan.method.r, plan.method.targets) == (3, ("q", "v"))
    finally:
        methods.unregister_method("frozen_lora")
