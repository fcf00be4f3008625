"""Plugins (issue #20): register_method, the lodabench.plugins entry points / LODABENCH_PLUGINS, and the
examples/plugin package (rsLoRA) used with zero changes to lodabench."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import lodabench
from lodabench import methods, plugins
from lodabench.errors import ConfigError
from lodabench.methods.base import LoRAStyleConfig, hp
from methods_tiny import batch, logits, randomize_adapters, tiny
from runs_helpers import REPO_ROOT, TINY_E2E, final_weights, run_cli, run_dirs

PLUGIN_DIR = REPO_ROOT / "examples" / "plugin"
PYTHON = sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LODABENCH_PLUGINS"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture
def rslora(monkeypatch):
    """The example plugin imported in-process (as load_plugins would), unregistered afterwards."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    import lodabench_rslora

    yield lodabench_rslora
    methods.unregister_method("rslora")
    sys.modules.pop("lodabench_rslora", None)


# ----------------------------------------------------------------------------- register_method


@dataclass
class _ToyConfig(LoRAStyleConfig):
    name: str = hp("toy_lora", "config name of the method")


def _toy_spec(name: str = "toy_lora", cfg: type = _ToyConfig) -> methods.MethodSpec:
    from lodabench.methods import lora

    return lodabench.MethodSpec(name, cfg, lora.apply, lora.merge)


def test_registered_method_is_applied_validated_and_removed():
    lodabench.register_method(_toy_spec())
    try:
        assert "toy_lora" in lodabench.method_names()
        model = lodabench.apply_method(tiny("gpt2"), "toy_lora", r=2)
        assert methods.method_of(model)["name"] == "toy_lora"
        with pytest.raises(ConfigError, match="method.rank is not a key of method=toy_lora"):
            methods.method_config({"name": "toy_lora", "rank": 2})
        with pytest.raises(ConfigError, match="already registered"):
            lodabench.register_method(_toy_spec())
    finally:
        methods.unregister_method("toy_lora")
    with pytest.raises(ConfigError, match="'toy_lora' is not a known method"):
        methods.get_spec("toy_lora")


def test_builtins_register_through_the_same_function(monkeypatch):
    seen = []
    real = methods.register_method
    monkeypatch.setattr(methods, "register_method", lambda spec, **kw: seen.append(spec.name) or real(spec, **kw))
    monkeypatch.setattr(methods.METHODS, "specs", {})
    assert methods.get_spec("lora").name == "lora" and seen == ["lora"]
    assert methods.get_spec("lora") is methods.METHODS.specs["lora"] and seen == ["lora"]  # once


def test_replacing_a_builtin_needs_replace_and_unregister_restores_it():
    @dataclass
    class MyLoRA(LoRAStyleConfig):
        name: str = hp("lora", "config name of the method")

    methods.get_spec("lora")
    with pytest.raises(ConfigError, match=r"method='lora', a built-in name \(defined in lodabench.methods.lora\)"):
        lodabench.register_method(_toy_spec("lora", MyLoRA))
    mine = lodabench.register_method(_toy_spec("lora", MyLoRA), replace=True)
    try:
        assert methods.get_spec("lora") is mine
    finally:
        methods.unregister_method("lora")
    assert methods.get_spec("lora").config_cls.__module__ == "lodabench.methods.lora"


@pytest.mark.parametrize("spec, match", [
    ("not a spec", "expected a lodabench.MethodSpec"),
    (lodabench.MethodSpec("Bad-Name", _ToyConfig, print), "must match"),
    (lodabench.MethodSpec("other", _ToyConfig, print), "needs a field `name` with default 'other'"),
    (lodabench.MethodSpec("toy_lora", dict, print), "config_cls must be a dataclass"),
    (lodabench.MethodSpec("toy_lora", _ToyConfig, "apply"), "must be callables"),
])
def test_bad_specs_fail_at_registration(spec, match):
    with pytest.raises(ConfigError, match=match):
        lodabench.register_method(spec)
    assert "toy_lora" not in methods.REGISTRY


# ----------------------------------------------------------------------------- the rsLoRA example


def test_rslora_scaling_is_alpha_over_sqrt_r(rslora):
    model = lodabench.apply_method(tiny("gpt2"), "rslora", r=4, alpha=32.0)
    scalings = {m.scaling for m in model.modules() if hasattr(m, "lora_A")}
    assert scalings == {32.0 / math.sqrt(4)}  # 16, where LoRA's alpha/r would give 8


def test_rslora_scaling_equals_peft_use_rslora(rslora):
    peft = pytest.importorskip("peft")
    net = peft.get_peft_model(tiny("llama"), peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj"],
                                                             use_rslora=True))
    peft_scaling = net.base_model.model.model.layers[0].self_attn.q_proj.scaling["default"]
    conf = methods.method_config({"name": "rslora", "r": 8, "alpha": 16.0})
    assert conf.scaling == peft_scaling == 16 / math.sqrt(8)


def test_rslora_is_lora_with_alpha_times_sqrt_r(rslora):
    """Same A, B: rsLoRA(r, alpha) computes LoRA(r, alpha * sqrt(r)) exactly (r=4: sqrt is exact)."""
    rs = lodabench.apply_method(tiny("bert", seed=5), "rslora", r=4, alpha=8.0)
    lo = lodabench.apply_method(tiny("bert", seed=5), "lora", r=4, alpha=16.0)
    randomize_adapters(rs)
    randomize_adapters(lo)
    assert torch.equal(logits(rs, batch()), logits(lo, batch()))
    plain = lodabench.apply_method(tiny("bert", seed=5), "lora", r=4, alpha=8.0)
    randomize_adapters(plain)  # LoRA with the same alpha scales by alpha/r: another function
    assert not torch.allclose(logits(rs, batch()), logits(plain, batch()))


def test_rslora_round_trip_and_merge(rslora, tmp_path):
    model = lodabench.apply_method(tiny("gpt2", seed=2), "rslora", r=4)
    randomize_adapters(model)
    lodabench.save_adapter(model, tmp_path)
    assert json.loads((tmp_path / "lodabench_adapter.json").read_text())["method"] == "rslora"
    loaded = lodabench.load_adapter(tiny("gpt2", seed=2), tmp_path)
    assert torch.equal(logits(loaded, batch()), logits(model, batch()))
    assert torch.allclose(logits(lodabench.merge(loaded), batch()), logits(model, batch()), atol=1e-5)


def test_plugin_config_is_validated_like_a_builtin(rslora, tmp_path):
    bad = tmp_path / "rslora.yaml"
    bad.write_text("name: rslora\nr: 4\nrank: 4\n")
    with pytest.raises(ConfigError, match="method.rank is not a key of method=rslora"):
        lodabench.register_method_config("rslora", bad)
    bad.write_text("name: rslora\nr: 0\n")
    with pytest.raises(ConfigError, match=r"method.r=0: must be a positive integer"):
        lodabench.register_method_config("rslora", bad)
    with pytest.raises(ConfigError, match="the config's name is 'lora'"):
        lodabench.register_method_config("rslora", {"name": "lora"})


def test_no_file_under_src_names_the_plugin_method():
    """(PEFT's export key ``use_rslora`` in checkpoint.py is PEFT's flag, not our method's name.)"""
    hits = [str(p) for p in (REPO_ROOT / "src" / "lodabench").rglob("*") if p.is_file()
            and p.suffix in (".py", ".yaml") and re.search(r"\brslora\b", p.read_text(encoding="utf-8"), re.I)]
    hits += [str(p) for p in (REPO_ROOT / "conf").rglob("*rslora*")]
    assert not hits


# ----------------------------------------------------------------------------- discovery


def test_env_var_plugin_composes_method_config():
    proc = subprocess.run([PYTHON, "-m", "lodabench", "method=rslora", "method.r=8", "--cfg", "job"], cwd=REPO_ROOT,
                          env=_env(PYTHONPATH=f"{PLUGIN_DIR}{os.pathsep}{REPO_ROOT / 'src'}",
                                   LODABENCH_PLUGINS="lodabench_rslora"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "name: rslora" in proc.stdout and "r: 8" in proc.stdout and "alpha: 32.0" in proc.stdout


def test_missing_plugin_module_stops_the_cli_with_one_line():
    proc = subprocess.run([PYTHON, "-m", "lodabench", "--cfg", "job"], cwd=REPO_ROOT,
                          env=_env(PYTHONPATH=str(REPO_ROOT / "src"), LODABENCH_PLUGINS="lodabench_no_such_plugin"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("lodabench: error: plugin module 'lodabench_no_such_plugin' (from LODABENCH_PLUGINS=")


def test_missing_plugin_module_names_the_env_var():
    code = "import lodabench; lodabench.load_plugins()"
    proc = subprocess.run([PYTHON, "-c", code], env=_env(PYTHONPATH=str(REPO_ROOT / "src"),
                                                         LODABENCH_PLUGINS="no_such_plugin_mod"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "plugin module 'no_such_plugin_mod' (from LODABENCH_PLUGINS=no_such_plugin_mod) cannot be imported" in proc.stderr


@pytest.mark.slow
def test_installed_plugin_runs_end_to_end(tmp_path, data_root, gpt2_tokenizer_dir):
    """pip-install examples/plugin into a target dir; its entry point alone makes method=rslora work."""
    copy = shutil.copytree(PLUGIN_DIR, tmp_path / "plugin")
    site = tmp_path / "site"
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(copy)], check=True, env=_env(), timeout=300, capture_output=True)
    assert list(site.glob("lodabench_rslora-*.dist-info/entry_points.txt"))
    overrides = [a for a in TINY_E2E if not a.startswith("method")]
    results = tmp_path / "results"
    run_cli(["method=rslora", "method.r=4", "method.alpha=8", *overrides], results,
            env=_env(PYTHONPATH=f"{site}{os.pathsep}{REPO_ROOT / 'src'}"))
    (run_dir,) = run_dirs(results)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete" and record["config"]["method"]["name"] == "rslora"
    assert "/rslora/" in str(run_dir)
    # The trained adapter, rebuilt from the record's config through the installed plugin's entry point.
    sys.path.insert(0, str(site))
    try:
        lodabench.load_plugins()
        cfg = dict(record["config"]["method"])
        model = lodabench.apply_method(tiny("gpt2"), cfg.pop("name"), **cfg)
        methods.load_trainable_state_dict(model, final_weights(run_dir))
        assert {m.scaling for m in model.modules() if hasattr(m, "lora_A")} == {8 / math.sqrt(4)}
        assert sys.modules["lodabench_rslora"].__file__.startswith(str(site))
    finally:
        sys.path.remove(str(site))
        methods.unregister_method("rslora")
        sys.modules.pop("lodabench_rslora", None)
        plugins._loaded.pop("lodabench_rslora", None)
