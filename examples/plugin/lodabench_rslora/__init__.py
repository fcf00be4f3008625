"""rsLoRA (Kalajdzievski 2023, arXiv:2312.03732) as a lodabench plugin: one file, no change to lodabench.

rsLoRA is LoRA with the rank-stabilised scaling factor gamma_r = alpha / sqrt(r) instead of
LoRA's alpha / r (the paper's Sec. 3: only gamma_r in Theta(1/sqrt(r)) keeps the adapter's
activations and gradients stable as r grows). Everything else is LoRA's: A, B, init, targets,
and the merge (the update is still linear in the weights). PEFT has the same as
``LoraConfig(use_rslora=True)``.

Importing this module registers the method (``method=rslora``; its config node is RsLoRAConfig, whose
defaults are LoRA's: LoRA paper Table 11, r=4, alpha=32, dropout 0.1 on W_q, W_v); lodabench imports
it through the ``lodabench.plugins`` entry point of this package (pyproject.toml), or by
``LODABENCH_PLUGINS=lodabench_rslora``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lodabench
from lodabench.methods import lora
from lodabench.methods.base import LoRAStyleConfig, hp


@dataclass
class RsLoRAConfig(LoRAStyleConfig):
    name: str = hp("rslora", "config name of the method")

    @property
    def scaling(self) -> float:
        return float(self.alpha) / math.sqrt(self.r)


SPEC = lodabench.MethodSpec("rslora", RsLoRAConfig, lora.apply, lora.merge,
                            description="rsLoRA: W0 + (alpha/sqrt(r)) B A on q, v")

lodabench.register_method(SPEC)
