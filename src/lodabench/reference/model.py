"""The golden cases' tiny GPT-2 + LoRA, built by lodabench's own code from ``weights.safetensors``.

``models.load_model`` builds the GPT-2 (``source: config``) and ``methods.apply_method`` injects
``method=lora`` exactly as a run does; then the case's tensors are copied in. Nothing here
re-implements the model or LoRA: a wrong shape, name or slice in lodabench shows up as a
mismatch (or as a CaseFormatError when the tensors cannot be placed at all).

What the weights do not tell is taken from ../shared/golden/lora_nlg/README.md ("The tiny model
(all cases)"): 4 heads, LayerNorm eps 1e-5, tanh-approximated GELU, no dropout, LoRA alpha 32
on q and v with LoRA dropout 0. Sizes (embedding width, layers, positions, vocabulary, rank) are
read from the tensors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from lodabench import methods
from lodabench.models.pretrained import load_model, load_tokenizer
from lodabench.reference.case import CaseFormatError, read_tensors

# ../shared/golden/lora_nlg/README.md, "The tiny model (all cases)".
TINY_GPT2 = {"n_head": 4, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
             "attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "tie_word_embeddings": True}
LORA = {"name": "lora", "alpha": 32.0, "dropout": 0.0, "targets": ["q", "v"]}

# golden "transformer.h.0.attn.c_attn.q.lora_A" <-> lodabench "transformer.h.0.attn.c_attn.adapters.q.lora_A"
_GOLDEN_LORA = re.compile(r"^(transformer\.h\.\d+\.attn\.c_attn)\.([qkv])\.(lora_[AB])$")


def our_name(golden: str) -> str:
    match = _GOLDEN_LORA.match(golden)
    if match is None:
        raise KeyError(golden)
    return f"{match.group(1)}.adapters.{match.group(2)}.{match.group(3)}"


def split_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(base tensors, LoRA tensors) of a case, upcast to float32 (stored BF16, exact)."""
    tensors = {k: v.float() for k, v in read_tensors(path).items()}
    lora = {k: v for k, v in tensors.items() if _GOLDEN_LORA.match(k)}
    if not lora:
        raise CaseFormatError(f"{path}: no LoRA tensors named transformer.h.<i>.attn.c_attn.<q|v>.lora_<A|B>")
    return {k: v for k, v in tensors.items() if k not in lora}, lora


def model_conf_from_weights(base: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The ``model`` config node (as conf/model/tiny-gpt2.yaml) of the case's GPT-2, its shapes
    read from the case's tensors (the golden cases ship weights, not a config)."""
    try:
        vocab, width = base["transformer.wte.weight"].shape
        positions = base["transformer.wpe.weight"].shape[0]
    except KeyError as exc:
        raise CaseFormatError(f"{path}: tensor {exc.args[0]!r} missing") from None
    layers = len({k.split(".")[2] for k in base if k.startswith("transformer.h.")})
    overrides = {"n_embd": int(width), "n_layer": layers, "n_positions": int(positions), "vocab_size": int(vocab),
                 **TINY_GPT2}
    return {"name": "lora_nlg_tiny", "family": "gpt2", "kind": "causal_lm", "source": "config",
            "pretrained": "gpt2", "tokenizer": None, "config_overrides": overrides}


def build_case_model(weights: Path) -> torch.nn.Module:
    """GPT-2 + ``method=lora`` via lodabench, holding exactly the case's weights (float32, eval mode)."""
    base, lora = split_weights(weights)
    model = load_model(model_conf_from_weights(base, weights), kind="causal_lm")
    _load_base(model, base, weights)
    rank = int(next(v for k, v in lora.items() if k.endswith("lora_A")).shape[0])
    model = methods.apply_method(model, {**LORA, "r": rank})
    _load_lora(model, lora, weights)
    return model.eval()


def tokenizer(location: str | None = None):
    """lodabench's GPT-2 tokenizer (../shared/tokenizers/gpt2 unless ``location`` is given)."""
    return load_tokenizer({"source": "config", "family": "gpt2", "tokenizer": location, "pretrained": "gpt2"})


def lora_params(model: torch.nn.Module, golden_names: list[str]) -> dict[str, torch.nn.Parameter]:
    """Golden name -> our parameter, for every golden LoRA tensor."""
    ours = dict(model.named_parameters())
    return {g: ours[our_name(g)] for g in golden_names}


def _load_base(model: torch.nn.Module, base: dict[str, torch.Tensor], path: Path) -> None:
    result = model.load_state_dict(base, strict=False)
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]  # tied to wte, not stored
    if missing or result.unexpected_keys:
        raise CaseFormatError(f"{path}: does not fit lodabench's GPT-2 of that shape: missing {missing[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]}")
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        raise CaseFormatError(f"{path}: lm_head is not tied to transformer.wte in the model built from it")


def _load_lora(model: torch.nn.Module, lora: dict[str, torch.Tensor], path: Path) -> None:
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    placed = {our_name(g) for g in lora}
    if placed != trainable:
        raise CaseFormatError(f"{path}: its LoRA tensors {sorted(placed)[:4]} ... do not match the trainable tensors "
                              f"of lodabench's method=lora {sorted(trainable)[:4]} ...")
    params = lora_params(model, list(lora))
    with torch.no_grad():
        for golden, value in lora.items():
            if params[golden].shape != value.shape:
                raise CaseFormatError(f"{path}: {golden} has shape {tuple(value.shape)}, lodabench's LoRA tensor "
                                      f"{our_name(golden)} {tuple(params[golden].shape)}")
            params[golden].copy_(value)
