"""Trainable-parameter counts from configs (meta device) against the closed-form formulas and the
numbers the papers quote; config validation errors; the registry."""

from __future__ import annotations

import pytest
import torch

from lodabench.errors import ConfigError
from lodabench.methods import REGISTRY, apply_method, count_parameters, get_spec, method_config
from lodabench.models.params import build_meta_model, count_for

from methods_tiny import tiny

D_M, L_M = 1024, 24  # GPT-2 medium
D_R, L_R = 768, 12  # RoBERTa-base


def lora_formula(d_in, d_out, r, n_mod, layers):
    return layers * n_mod * r * (d_in + d_out)


@pytest.mark.parametrize(
    "method, expected",
    [
        ({"name": "lora", "r": 4}, 393_216),  # LoRA paper Table 3 / LoDA Table 1: 0.35M (1e6) / 0.38M (2^20)
        ({"name": "loda", "r": 4}, 394_752),  # 393,216 + 24 * 2 * 2 * 4^2
        ({"name": "loda_plus", "r": 4}, 394_752),
        ({"name": "r_loda", "r": 4, "rank": 400}, 394_752),  # frozen approximation adds no trainable
        ({"name": "s_loda_plus", "r": 4, "keep": 0.5}, 394_752),
        ({"name": "ft_top2"}, 25_194_496),  # LoRA paper Table 3: FT^Top2 25.19M
        ({"name": "ft_qv"}, 50_331_648),  # 48.00 * 2^20
        ({"name": "condlora", "r": 4}, 2 * 4 * (D_M + D_M)),
        ({"name": "dora", "r": 4}, 393_216 + L_M * 2 * D_M),
    ],
)
def test_gpt2_medium_counts(method, expected):
    c = count_for("gpt2-medium", method)
    assert c["trainable"] == expected
    assert c["head"] == 0  # GPT-2's tied lm_head never counts as a head


def test_gpt2_medium_formulas_and_units():
    d, L, r = D_M, L_M, 4
    lora = count_for("gpt2-medium", {"name": "lora", "r": r})
    assert lora["trainable"] == lora_formula(d, d, r, 2, L) == 393_216
    assert lora["trainable_Mi"] == 0.375 and lora["paper"] == "0.38M"
    assert lora["trainable_M"] == pytest.approx(0.393216)
    loda = count_for("gpt2-medium", {"name": "loda", "r": r})
    assert loda["trainable"] == L * 2 * (2 * r * d + 2 * r * r)
    block = 12 * d * d + 13 * d
    assert count_for("gpt2-medium", "ft_top2")["trainable"] == 2 * block + 2 * d
    qv = count_for("gpt2-medium", "ft_qv")
    assert qv["trainable"] == L * 2 * d * d and qv["trainable_Mi"] == 48.0
    ft = count_for("gpt2-medium", "ft")
    assert ft["trainable"] == ft["total"] == 354_823_168  # 355M incl. position embeddings; lm_head tied
    assert count_for("gpt2-medium", "bitfit")["trainable"] == L * 11 * d + d  # 11d biases/block + ln_f
    lora_k = count_for("gpt2-medium", {"name": "lora", "r": 8, "targets": ["q", "k", "v"]})
    assert lora_k["trainable"] == lora_formula(d, d, 8, 3, L)


def test_roberta_base_counts_with_and_without_head():
    d, L = D_R, L_R
    c = count_for("roberta-base", {"name": "lora", "r": 8})
    assert c["trainable_without_head"] == lora_formula(d, d, 8, 2, L) == 294_912  # LoRA Table 2: 0.3M
    head = d * d + d + d * 2 + 2  # RobertaClassificationHead: dense + out_proj (2 labels)
    assert c["head"] == head and c["trainable"] == 294_912 + head
    assert count_for("roberta-base", {"name": "condlora", "r": 8})["trainable_without_head"] == 2 * 8 * 2 * d
    assert count_for("roberta-base", "ft_qv")["trainable_without_head"] == L * 2 * d * d
    bf = count_for("roberta-base", "bitfit")["trainable_without_head"]
    # per layer: q,k,v,attn-out,ffn-in(4d),ffn-out biases + 2 LayerNorm biases = 11d; + embedding LayerNorm bias
    assert bf == L * 11 * d + d


@pytest.mark.parametrize("w0", ["linear", "input_major"])
def test_condlora_count_is_independent_of_depth(w0):
    counts = []
    for n_layer in (2, 3, 6):
        with torch.device("meta"):
            m = apply_method(tiny("gpt2", n_layer=n_layer), {"name": "condlora", "r": 4, "w0": w0})
        counts.append(count_parameters(m)["trainable"])
    assert counts[0] == counts[1] == counts[2] == 2 * 4 * (64 + 64)
    with torch.device("meta"):
        lora = [count_parameters(apply_method(tiny("gpt2", n_layer=n), {"name": "lora", "r": 4}))["trainable"] for n in (2, 6)]
    assert lora[1] == 3 * lora[0]


def test_llama_gqa_shapes_counted():
    # tiny llama: hidden 64, kv out 32; q: 64->64, v: 64->32
    with torch.device("meta"):
        m = apply_method(tiny("llama"), {"name": "lora", "r": 4})
    assert count_parameters(m)["trainable"] == 2 * (4 * (64 + 64) + 4 * (64 + 32))
    with torch.device("meta"):
        m = apply_method(tiny("llama"), {"name": "condlora", "r": 4, "w0": "input_major"})
    assert count_parameters(m)["trainable"] == 4 * (64 + 64) + 4 * (64 + 32)
    # q_proj alone is square, so the official orientation applies there
    with torch.device("meta"):
        m = apply_method(tiny("llama"), {"name": "condlora", "r": 4, "targets": ["q"]})
    assert count_parameters(m)["trainable"] == 4 * (64 + 64)


def test_condlora_w0_is_validated_before_training():
    with torch.device("meta"):
        llama, gpt2 = tiny("llama"), tiny("gpt2")
    # GQA v_proj is 64 -> 32: the official orientation W0 = W_lin does not type-check
    with pytest.raises(ConfigError, match=r"method\.w0='linear': the v projection is not square "
                                          r"\(nn\.Linear weight \(out=32, in=64\)\).*Fix: set method\.w0=input_major"):
        method_config({"name": "condlora", "r": 4}, llama)
    with pytest.raises(ConfigError, match=r"method\.w0='linear': the k projection"):
        method_config({"name": "condlora", "r": 4, "targets": ["q", "k"]}, llama)
    with pytest.raises(ConfigError, match=r"method\.w0='transposed': is not one of \['linear', 'input_major'\]"):
        method_config({"name": "condlora", "w0": "transposed"}, gpt2)
    with pytest.raises(ConfigError, match=r"method\.w0"):  # checked without a model too
        method_config({"name": "condlora", "w0": "transposed"})
    assert method_config({"name": "condlora"}, gpt2).w0 == "linear"  # the official code's default
    assert method_config({"name": "condlora", "w0": "input_major"}, llama).w0 == "input_major"


def test_registry_lists_every_paper_method():
    for name in ["ft", "ft_top2", "ft_qv", "bitfit", "lora", "loda", "loda_plus", "r_loda", "r_loda_plus",
                 "s_loda", "s_loda_plus", "condlora", "dora", "adapter_h", "adapter_l", "prefix", "prompt"]:
        assert name in REGISTRY
    for name in ["lora", "loda", "r_loda_plus", "condlora", "dora", "ft_qv"]:
        assert get_spec(name).name == name
    with pytest.raises(ConfigError, match="Valid names: .*lora"):
        get_spec("lorra")


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"name": "lora", "r": 0}, r"method\.r=0"),
        ({"name": "lora", "rank": 4}, r"method\.rank is not a key of method=lora. Valid keys: .*\br\b"),
        ({"name": "lora", "r": 100}, r"method\.r=100: exceeds .*min\(in=64, out=64\)=64"),
        ({"name": "lora", "targets": ["q", "x"]}, r"method\.targets"),
        ({"name": "lora", "r": "four"}, r"method\.r='four' has the wrong type: expected int"),
        ({"name": "r_loda", "rank": 193}, r"method\.rank=193: exceeds min\(d_in=64, d_q\+d_k\+d_v=192\)=64"),
        ({"name": "s_loda", "keep": 0.0}, r"method\.keep=0\.0: must lie in \(0, 1\]"),
        ({"name": "s_loda", "keep": 1.5}, r"method\.keep=1\.5"),
        ({"name": "loda", "plus": True}, r"method\.plus=True: contradicts method\.name=loda"),
        ({"name": "loda", "activation": "swish"}, r"method\.activation='swish'"),
        ({"r": 4}, r"no 'name' key"),
    ],
)
def test_config_errors_name_key_and_fix(cfg, match):
    with torch.device("meta"):
        model = tiny("gpt2")
    with pytest.raises(ConfigError, match=match):
        method_config(cfg, model)


def test_method_not_for_family_and_rank_vs_gqa():
    with torch.device("meta"):
        llama = tiny("llama")
    with pytest.raises(ConfigError, match="bitfit does not apply to model family 'llama'"):
        method_config({"name": "bitfit"}, llama)
    # v_proj is 64 -> 32 with GQA: r may not exceed 32
    with pytest.raises(ConfigError, match=r"method\.r=40: exceeds the v projection"):
        method_config({"name": "lora", "r": 40}, llama)
    # R-LoDA on llama: fused W_proj is 64 x (64 + 32 + 32)
    method_config({"name": "r_loda", "rank": 64}, llama)


def test_config_from_omegaconf_and_schema_defaults():
    from omegaconf import OmegaConf

    from lodabench.methods import method_names
    from lodabench.config.schema import defaults_of

    for name in method_names():  # what method=<name> composes to is a valid config of that method
        conf = method_config(OmegaConf.create(defaults_of("method", name)))
        assert conf.name == name
    c = method_config(OmegaConf.create({"name": "lora", "targets": ["q", "k"], "alpha": 16}))
    assert c.targets == ("q", "k") and c.alpha == 16.0 and c.scaling == 4.0


def test_build_meta_model_from_lead_conf():
    m = build_meta_model("tiny-gpt2")
    assert m.transformer.h[0].attn.c_attn.weight.is_meta


@pytest.fixture
def unwritten_method():
    """A registry entry whose module does not exist, as a built-in's is before its module is written.

    register_method cannot make one (it stores the spec itself, so get_spec never imports); the
    entry is removed with unregister_method, the registry's one way out.
    """
    from lodabench import methods
    methods.REGISTRY["future_method"] = "lodabench.methods.not_written_yet"
    yield "future_method"
    methods.unregister_method("future_method")


def test_missing_method_module_fails_only_its_names(unwritten_method):
    with pytest.raises(ConfigError, match=r"method='future_method' is registered in lodabench\.methods\.not_written_yet, which is not available"):
        get_spec(unwritten_method)
    assert get_spec("lora").name == "lora"


def test_params_cli_prints_json(capsys):
    import json

    from lodabench.models.params import main

    assert main(["model=tiny-gpt2", "method=lora", "method.r=2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "lora" and out["trainable"] == 2 * 2 * 2 * (64 + 64)
    assert out["method_config"]["r"] == 2


def test_params_cli_counts_a_plugin_method():
    """``lodabench params`` loads plugins as a run does: the example rsLoRA plugin's method composes
    (its config is a ConfigStore node, absent until the plugin is imported) and counts as LoRA does."""
    import json
    import os
    import subprocess
    import sys

    from lodabench.paths import REPO_ROOT

    env = {**os.environ, "LODABENCH_PLUGINS": "lodabench_rslora", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "examples" / "plugin"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "lodabench.cli", "params", "model=tiny-gpt2", "method=rslora",
                           "method.r=2"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["method"] == "rslora" and out["trainable"] == 2 * 2 * 2 * (64 + 64)
