"""The method library from your own code: lodabench.apply_method / save_adapter / load_adapter / merge."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import lodabench
from lodabench import methods
from lodabench.errors import CheckpointError, ConfigError
from lodabench.library import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from methods_tiny import batch, logits, randomize_adapters, tiny

torch.set_num_threads(1)


def _train_one_step(model: torch.nn.Module, family: str) -> None:
    b = batch()
    labels = b["input_ids"] if family in ("gpt2", "llama") else torch.tensor([0, 1])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(**b, labels=labels).loss.backward()
    opt.step()
    model.eval()


def test_bar_loda_on_llama_train_save_load_identical_logits(tmp_path):
    model = lodabench.apply_method(tiny("llama", seed=7), "loda", r=4, targets=["q", "v"])
    _train_one_step(model, "llama")
    lodabench.save_adapter(model, tmp_path / "adapter")
    loaded = lodabench.load_adapter(tiny("llama", seed=7), tmp_path / "adapter")
    assert torch.equal(logits(loaded, batch()), logits(model, batch()))
    # the step moved the adapter, so equality is not the untouched base's
    assert not torch.equal(logits(model, batch()), logits(tiny("llama", seed=7), batch()))


@pytest.mark.parametrize("family", ["gpt2", "bert", "llama"])
@pytest.mark.parametrize("name", ["lora", "loda", "dora"])
def test_round_trip_identical_logits(tmp_path, family, name):
    model = lodabench.apply_method(tiny(family, seed=3), name, r=2, targets=["q", "v"])
    _train_one_step(model, family)
    out = lodabench.save_adapter(model, tmp_path / "a")
    cfg = json.loads((out / ADAPTER_CONFIG).read_text())
    assert cfg["method"] == name and cfg["options"]["r"] == 2 and cfg["options"]["targets"] == ["q", "v"]
    assert cfg["lodabench_version"] == lodabench.__version__
    loaded = lodabench.load_adapter(tiny(family, seed=3), out)
    assert torch.equal(logits(loaded, batch()), logits(model, batch()))
    assert lodabench.method_options(loaded) == lodabench.method_options(model)


def test_injected_modules_take_the_models_mode():
    model = lodabench.apply_method(tiny("gpt2"), "lora", r=2)  # tiny() is in eval mode
    assert not any(m.training for m in model.modules())
    model = lodabench.apply_method(tiny("gpt2").train(), "lora", r=2)
    assert all(m.training for m in model.modules())


def test_load_onto_another_base_is_not_silently_equal(tmp_path):
    model = lodabench.apply_method(tiny("gpt2", seed=3), "lora", r=2)
    _train_one_step(model, "gpt2")
    lodabench.save_adapter(model, tmp_path)
    other = lodabench.load_adapter(tiny("gpt2", seed=4), tmp_path)
    assert not torch.equal(logits(other, batch()), logits(model, batch()))


@pytest.mark.parametrize("name", ["lora", "dora"])
def test_merge_linear_methods_keeps_outputs(name):
    model = lodabench.apply_method(tiny("gpt2", seed=3), name, r=2)
    _train_one_step(model, "gpt2")
    before = logits(model, batch())
    merged = lodabench.merge(model)
    assert torch.allclose(logits(merged, batch()), before, atol=1e-5)


def test_merge_nonlinear_method_says_why():
    model = lodabench.apply_method(tiny("gpt2"), "loda", r=2)
    with pytest.raises(ConfigError, match="method=loda cannot be merged"):
        lodabench.merge(model)


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match="method.rank is not a key of method=lora"):
        lodabench.apply_method(tiny("gpt2"), "lora", rank=4)
    with pytest.raises(ConfigError, match="targets"):
        lodabench.apply_method(tiny("gpt2"), "lora", targets=["q", "x"])
    with pytest.raises(ConfigError, match="not a known method"):
        lodabench.apply_method(tiny("gpt2"), "no_such_method")


def test_save_without_method_and_load_of_wrong_dir(tmp_path):
    with pytest.raises(CheckpointError, match="no lodabench method applied"):
        lodabench.save_adapter(tiny("gpt2"), tmp_path)
    with pytest.raises(CheckpointError, match="lodabench_adapter.json: no such file"):
        lodabench.load_adapter(tiny("gpt2"), tmp_path)


def test_load_refuses_tensors_of_another_config(tmp_path):
    model = lodabench.apply_method(tiny("gpt2"), "lora", r=2)
    lodabench.save_adapter(model, tmp_path)
    cfg = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    cfg["options"]["r"] = 4  # the JSON no longer matches the tensors: refused, naming the key
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"method.r: checkpoint 2 vs model 4"):
        lodabench.load_adapter(tiny("gpt2"), tmp_path)
    assert (tmp_path / ADAPTER_WEIGHTS).exists()


def test_import_lodabench_is_cheap():
    code = "import sys, lodabench; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "apply_method" in dir(lodabench)
    with pytest.raises(AttributeError):
        lodabench.no_such_name  # noqa: B018


# Options that fit the tiny 64-dim models (the YAML defaults are sized for GPT-2 medium / RoBERTa).
_TINY_OPTIONS = {"r_loda": {"rank": 16}, "r_loda_plus": {"rank": 16}, "prompt": {"vocab_high": 256}}
# Pairs the method itself refuses (its ConfigError says why): bitfit has no LLaMA biases to train;
# condlora's A = (W0 theta_A)^T needs square q/v, and the tiny LLaMA's k/v are GQA (64 -> 32).
_NOT_APPLICABLE = {("llama", "bitfit"), ("llama", "condlora")}


@pytest.mark.parametrize("family", ["gpt2", "bert", "llama"])
@pytest.mark.parametrize("name", sorted(methods._BUILTIN))
def test_every_builtin_method_round_trips(tmp_path, family, name):
    if (family, name) in _NOT_APPLICABLE:
        with pytest.raises(ConfigError):
            lodabench.apply_method(tiny(family), name, **_TINY_OPTIONS.get(name, {}))
        return
    model = lodabench.apply_method(tiny(family, seed=3), name, **_TINY_OPTIONS.get(name, {}))
    randomize_adapters(model)
    lodabench.save_adapter(model, tmp_path)
    loaded = lodabench.load_adapter(tiny(family, seed=3), tmp_path)
    assert torch.equal(logits(loaded, batch()), logits(model, batch()))
