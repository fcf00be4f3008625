"""One door (issue #28): the composed config is typed once (``OmegaConf.to_object`` gives a RunConfig
whose groups are the real dataclasses), each group's values are validated once, and the model
checks of a method run once, when the model is built."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

import lodabench
from lodabench import methods
from lodabench.config.schema import compose
from lodabench.errors import ConfigError
from lodabench.methods.base import MethodSpec
from lodabench.methods.lora import LoRAConfig, apply as lora_apply
from committed_composes import each_composed
from methods_tiny import tiny


def _count(monkeypatch, cls, name):
    calls = []
    real = getattr(cls, name)
    monkeypatch.setattr(cls, name, lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    return calls


def test_a_run_validates_the_method_once_and_checks_the_model_once(monkeypatch, data_root):
    from lodabench.run.preflight import preflight

    validated, checked = _count(monkeypatch, LoRAConfig, "validate"), _count(monkeypatch, LoRAConfig, "check_model")
    plan = preflight(compose(["model=tiny-gpt2", "method=lora", "method.r=8", "data=e2e", "data.max_eval_items=4",
                              f"paths.data_root={data_root}"]))
    assert plan.method_spec is methods.get_spec("lora")
    model = plan.method_spec.attach(tiny("gpt2"), plan.method)  # what run.spine.build_model calls
    assert validated == [()] and len(checked) == 1
    assert methods.method_of(model)["config"]["r"] == 8


def test_attach_is_apply_config_and_the_old_common_path_still_imports():
    """``apply_config`` (the library's) and a run's ``MethodSpec.attach`` are one code path; the
    config pieces that moved from methods/common.py into methods/base.py import from both."""
    import lodabench.methods.base as base
    import lodabench.methods.common as common

    conf = methods.method_config({"name": "lora", "r": 2})
    a, b = methods.apply_config(tiny("gpt2"), conf), methods.get_spec("lora").attach(tiny("gpt2"), conf)
    assert methods.method_of(a) == methods.method_of(b) == {"name": "lora", "config": methods.method_of(a)["config"]}
    assert [n for n, p in a.named_parameters() if p.requires_grad] == [n for n, p in b.named_parameters() if p.requires_grad]
    with pytest.raises(ConfigError, match="already has method=lora"):
        methods.get_spec("lora").attach(a, conf)
    for name in ("LoRAStyleConfig", "hp", "rng", "fail", "check_positive_int", "and_model", "low_rank_text"):
        assert getattr(common, name) is getattr(base, name), name


def test_apply_method_from_code_still_checks_values_and_model():
    with pytest.raises(ConfigError, match=r"method\.r=0"):
        methods.apply_method(tiny("gpt2"), {"name": "lora", "r": 0})
    with pytest.raises(ConfigError, match=r"method\.r=4096: exceeds"):
        methods.apply_method(tiny("gpt2"), {"name": "lora", "r": 4096})


@dataclasses.dataclass
class _OldStyleConfig:
    """A plugin config written for the one-call contract: validate(model=None), no check_model."""

    name: str = "old_style"
    r: int = 2
    seen: tuple = ()

    def validate(self, model=None):
        if self.r < 1:
            raise ConfigError(f"method.r={self.r}: must be >= 1")
        if model is not None and self.r > 4:
            raise ConfigError(f"method.r={self.r}: too large for this model")


def _old_apply(model, cfg):
    return lora_apply(model, LoRAConfig(r=cfg.r))


def test_an_old_plugin_validate_with_a_model_still_works_with_a_deprecation():
    lodabench.register_method(MethodSpec("old_style", _OldStyleConfig, _old_apply))
    try:
        with pytest.raises(ConfigError, match="must be >= 1"):
            methods.method_config({"name": "old_style", "r": 0})  # values checked before any model
        with pytest.warns(DeprecationWarning, match="check_model"), pytest.raises(ConfigError, match="too large"):
            methods.apply_method(tiny("gpt2"), {"name": "old_style", "r": 5})
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert methods.method_of(methods.apply_method(tiny("gpt2"), {"name": "old_style"}))["name"] == "old_style"
    finally:
        methods.unregister_method("old_style")


# ------------------------------------------------------------------------------------ run identity
GOLDEN = Path(__file__).parent / "golden" / "run_identity.json"


def _composed_jobs(commands: list[str]) -> dict[str, dict[str, str]]:
    """Each command's run directory and resolved config.yaml, composed as Hydra composes a job."""
    from omegaconf import OmegaConf

    found = {}
    overrides = [[] if command == "(defaults)" else command.split(" ") for command in commands]
    for cfg, command in zip(each_composed(overrides), commands):  # the generator first: it runs to its end
        job = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"}, resolve=True)
        found[command] = {"run_dir": str(cfg.run_dir), "config_yaml": job}
    return found


def test_the_same_overrides_give_the_same_run_directory_and_config(monkeypatch):
    """Run identity did not move with the typed nodes (data and decoding=beam are now the real
    dataclasses, no mirrors): tests/golden/run_identity.json was written by the code before that change
    (commit eb68a6d): each command's run directory and the config.yaml a run writes, byte for byte. Since,
    one key was added (`trainer.keep_freed_memory: true`, operational): each config.yaml gained that line
    and nothing else; the run directories did not move."""
    monkeypatch.delenv("LODABENCH_RESULTS_DIR", raising=False)
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert _composed_jobs(list(golden)) == golden


def test_to_object_of_the_root_is_a_run_config_of_real_dataclasses():
    from lodabench.config.schema import RunConfig
    from lodabench.run.preflight import run_config
    from lodabench.tasks.decoding import DecodingConfig
    from lodabench.tasks.glue import GlueDataConfig

    run = run_config(compose(["model=tiny-roberta", "data=sst2", "method=lora", "method.r=8"]))
    assert type(run) is RunConfig and type(run.method) is LoRAConfig and run.method.r == 8
    assert type(run.data) is GlueDataConfig and run.data.name == "sst2" and type(run.decoding) is DecodingConfig
    assert run.run_name.startswith("${data.name}/")  # outside a Hydra job: the template, unresolved


def test_tuple_fields_keep_their_declared_type():
    from lodabench.run.preflight import run_config

    run = run_config(compose(["model=tiny-gpt2", "method=lora", "method.targets=[q,k]"]))
    assert run.method.targets == ("q", "k") and run.decoding.extra_eos == ("\n\n",)


def test_an_omegaconf_error_at_the_door_names_the_key():
    from lodabench.run.preflight import run_config

    with pytest.raises(ConfigError, match=r"model\.pretrained has no value"):
        run_config(compose(["model=tiny-gpt2", "model.pretrained=???"]))
