"""The contract every method module follows, so the registry and the trainer treat them alike.

A method module defines a config dataclass (fields with help text in ``metadata["help"]``, a
``validate()`` for the values and a ``check_model(model)`` for what needs the built model, each
raising ConfigError naming the key, the value and the fix: methods/common.py) and one or more
``MethodSpec`` entries in a module-level ``SPECS`` list. ``apply(model, config)`` freezes the base
model, injects the method and returns the model to train; the forward stays
"base output + adapter delta".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Callable

import torch
import torch.nn as nn


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type
    apply: Callable[[nn.Module, Any], nn.Module]
    # None = the update is not linear in the weights (or is not a weight update): merge() says so.
    merge: Callable[[nn.Module], nn.Module] | None = None
    # The method's step between training and evaluation, (model, run_dir) -> model to evaluate;
    # None: nothing (prefix with the MLP projection merges it and saves the merged prefix).
    after_training: Callable[[nn.Module, Any], nn.Module] | None = None
    # Model families the method applies to: gpt2 (fused c_attn Conv1D), bert/roberta (query/key/value
    # Linear), llama (q_proj/k_proj/v_proj Linear).
    families: tuple[str, ...] = ("gpt2", "bert", "roberta", "llama")
    description: str = field(default="")
    # For error messages about a checkpoint: a short text ("lora with r=4 on ['q', 'v'] ...") when a
    # trainable state dict looks like this method's, else None (methods.describe_state_dict asks each spec).
    describe: Callable[[Mapping[str, torch.Tensor]], str | None] | None = None
    # How the results tables name the method: Markdown/CSV and LaTeX (the papers' row labels, e.g.
    # LoDA Table 1's "Adapter^H"); "" = the name (LaTeX: the Markdown label, escaped).
    label: str = ""
    tex_label: str = ""
