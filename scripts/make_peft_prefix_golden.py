"""Write tests/golden/peft_prefix/: PEFT's own prefix-tuning logits on tiny BERT/RoBERTa classifiers.

Why a stored oracle: PEFT 0.21.2 decides whether a model can take a prefix by looking for a
``past_key_values`` parameter in the backbone's ``forward`` signature. transformers 5.24 renamed that
parameter of BERT/RoBERTa to ``cache`` (``past_key_values`` is still accepted through a deprecation
shim until 5.40), so under the locked transformers PEFT refuses BERT/RoBERTa prefix tuning ("Model does not
support past key values which are required for prefix tuning") although the model itself is unchanged.
The oracle is therefore pinned: PEFT's outputs are computed once under the last versions where PEFT runs
on these models and stored with the exact versions, the tiny weights, the inputs and the prefix; the test
(tests/test_methods_prefix_prompt.py) compares lodabench's prefix against them under any version.

Regenerate (any machine; a throwaway venv with the oracle's versions):
    python3 -m venv /tmp/venv-oracle
    /tmp/venv-oracle/bin/pip install torch==2.13.0 transformers==5.23.0 peft==0.21.2 safetensors
    /tmp/venv-oracle/bin/python scripts/make_peft_prefix_golden.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import torch
from peft import PrefixTuningConfig, get_peft_model
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "peft_prefix"
V, N_VIRTUAL = 97, 4
SMALL = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64, vocab_size=V,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)


def tiny(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "bert":
        return BertForSequenceClassification(BertConfig(**SMALL)).eval()
    return RobertaForSequenceClassification(RobertaConfig(**SMALL, pad_token_id=1)).eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, V, (3, 8), generator=g)
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[1, -3:] = 0  # right padding on one row
    return x, mask


def case(family: str) -> dict[str, torch.Tensor]:
    base = tiny(family)
    # Before wrapping: PEFT moves the classifier into modules_to_save (same values, other names).
    weights = {f"base.{k}": v.clone().contiguous() for k, v in base.state_dict().items()}
    x, mask = inputs()
    peft_model = get_peft_model(base, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N_VIRTUAL)).eval()
    g = torch.Generator().manual_seed(3)
    emb = peft_model.prompt_encoder["default"].embedding
    prefix = torch.randn(emb.weight.shape, generator=g) * 0.5  # (n, layers*2*heads*head_dim), PEFT's layout
    with torch.no_grad():
        emb.weight.copy_(prefix)
        logits = peft_model(input_ids=x, attention_mask=mask).logits
    return {**weights, "input_ids": x, "attention_mask": mask, "prefix": prefix, "peft_logits": logits}


if __name__ == "__main__":
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for family in ("bert", "roberta"):
        save_file(case(family), OUT / f"{family}.safetensors")
    meta = {"versions": {p: version(p) for p in ("peft", "transformers", "torch")},
            "num_virtual_tokens": N_VIRTUAL, "prefix_layout": "(n, layers * 2 * heads * head_dim), PEFT's",
            "made_by": "scripts/make_peft_prefix_golden.py"}
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT}: {meta['versions']}")
