"""One door (issue #28): the composed config is typed once (``OmegaConf.to_object`` gives a RunConfig
whose groups are the real dataclasses), each group's values are validated once, and the model
checks of a method run once, when the model is built."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

import lodabench
from lodabench import methods
from lodabench.config.schema import compose
from lodabench.errors import ConfigError
from lodabench.methods.base import MethodSpec
from lodabench.methods.lora import LoRAConfig, apply as lora_apply
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
    model = methods.apply_config(tiny("gpt2"), plan.method)  # what run.spine.build_model calls
    assert validated == [()] and len(checked) == 1
    assert methods.method_of(model)["config"]["r"] == 8


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
