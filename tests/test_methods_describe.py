"""``describe_state_dict`` asks each method (``MethodSpec.describe``) what a trainable state dict is:
the texts of the "checkpoint does not fit" errors for every built-in, that the built-ins' answers
exclude each other (so their order cannot change a text), and that a plugin's describe is asked."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from lodabench import methods
from lodabench.methods import apply_method, describe_state_dict, trainable_state_dict
from lodabench.methods.base import LoRAStyleConfig, hp

from methods_tiny import tiny

LODA = "loda/loda_plus/r_loda*/s_loda* (f1 depth 2) with r=4 on ['q', 'v']"
# The texts describe_state_dict gave when its branches were hard-coded in methods/__init__.py.
EXPECTED = {
    ("gpt2", "ft"): "28 tensors, e.g. 'transformer.wte.weight'",
    ("gpt2", "ft_top2"): "26 tensors, e.g. 'transformer.h.0.ln_1.weight'",
    ("gpt2", "ft_qv"): "ft_qv on GPT-2",
    ("gpt2", "bitfit"): "bitfit (13 bias tensors)",
    ("gpt2", "lora"): "lora with r=4 on ['q', 'v'] (8 tensors)",
    ("gpt2", "loda"): f"{LODA} (16 tensors)",
    ("gpt2", "loda_plus"): f"{LODA} (16 tensors)",
    ("gpt2", "r_loda"): f"{LODA} (16 tensors)",
    ("gpt2", "s_loda_plus"): f"{LODA} (16 tensors)",
    ("gpt2", "condlora"): "condlora with r=4",
    ("gpt2", "dora"): "dora with r=4 on ['q', 'v'] (12 tensors)",
    ("gpt2", "adapter_l"): "12 tensors, e.g. 'transformer.h.0.adapter_out.norm.weight'",
    ("gpt2", "prefix"): "1 tensors, e.g. 'prefix'",
    ("roberta", "ft_qv"): "8 tensors, e.g. 'roberta.encoder.layer.0.attention.self.query.weight'",
    ("roberta", "bitfit"): "bitfit (21 bias tensors)",
    ("roberta", "lora"): "lora with r=4 on ['q', 'v'] (12 tensors)",
    ("roberta", "r_loda_plus"): f"{LODA} (20 tensors)",
    ("roberta", "condlora"): "condlora with r=4",
    ("roberta", "dora"): "dora with r=4 on ['q', 'v'] (16 tensors)",
    ("llama", "lora"): "lora with r=4 on ['q', 'v'] (8 tensors)",
    ("llama", "s_loda"): f"{LODA} (16 tensors)",
}


def _state_dict(family: str, name: str) -> dict[str, torch.Tensor]:
    cfg = {"name": name, **({"rank": 16} if name.startswith("r_loda") else {})}
    return trainable_state_dict(apply_method(tiny(family, seed=0), cfg))


@pytest.mark.parametrize("family, name", list(EXPECTED), ids=[f"{f}-{n}" for f, n in EXPECTED])
def test_each_builtin_is_described_as_before_and_by_one_method_at_most(family, name):
    sd = _state_dict(family, name)
    assert describe_state_dict(sd) == EXPECTED[(family, name)]
    claims = [n for n in methods.method_names() if methods.get_spec(n).describe is not None
              and methods.get_spec(n).describe(sd) is not None]
    owners = {methods.get_spec(n).describe for n in claims}
    assert len(owners) <= 1, f"{family}/{name} is claimed by {claims}: the built-ins' answers must exclude each other"


def test_empty_and_unknown_state_dicts():
    assert describe_state_dict({}) == "an empty state dict"
    assert describe_state_dict({"x.w": torch.zeros(2), "y.w": torch.zeros(2)}) == "2 tensors, e.g. 'x.w'"


@dataclass
class _ToyConfig(LoRAStyleConfig):
    name: str = hp("toy_described", "config name of the method")


@pytest.fixture
def toy_method():
    """A plugin-style method that describes its own tensors; unregistered afterwards."""
    from lodabench.methods import lora

    def describe(sd):
        return "toy with a gate" if any(k.endswith("toy_gate") for k in sd) else None

    methods.register_method(methods.MethodSpec("toy_described", _ToyConfig, lora.apply, lora.merge, describe=describe))
    yield
    methods.unregister_method("toy_described")


def test_a_plugin_describes_its_own_state_dict(toy_method):
    assert describe_state_dict({"h.0.toy_gate": torch.zeros(1)}) == "toy with a gate"
    sd = _state_dict("gpt2", "lora")
    assert describe_state_dict(sd) == EXPECTED[("gpt2", "lora")]  # built-ins are asked first
