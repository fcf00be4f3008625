"""Tiny random-init models (from config, no hub) shared by the tests/test_methods_*.py files."""

from __future__ import annotations

import logging

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

logging.getLogger("transformers").setLevel(logging.ERROR)

FAMILIES = ("gpt2", "roberta", "bert", "llama")


def tiny(family: str, seed: int = 0, n_layer: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    if family == "gpt2":
        cfg = GPT2Config(n_embd=64, n_layer=n_layer, n_head=4, vocab_size=256, n_positions=64,
                         bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(cfg)
    elif family == "roberta":
        cfg = RobertaConfig(vocab_size=256, hidden_size=64, num_hidden_layers=n_layer, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=80, num_labels=3, pad_token_id=1)
        model = RobertaForSequenceClassification(cfg)
    elif family == "bert":
        cfg = BertConfig(vocab_size=256, hidden_size=64, num_hidden_layers=n_layer, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=80, num_labels=2)
        model = BertForSequenceClassification(cfg)
    elif family == "llama":
        # GQA as SmolLM2: 4 query heads, 2 kv heads -> k/v out = 32 for hidden 64.
        cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=n_layer,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                          tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = LlamaForCausalLM(cfg)
    else:
        raise ValueError(family)
    return model.eval()


def batch(seed: int = 1, bsz: int = 2, seq: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 250, (bsz, seq), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def randomize_adapters(model: torch.nn.Module, seed: int = 3, scale: float = 0.1) -> None:
    """Give every trainable tensor a nonzero random value (B starts at 0, which would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)


def logits(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**b).logits


class InjectedCrash(RuntimeError):
    """Raised inside a loss call by ``lora_trainer(crash_at_call=...)``: a crash in mid-step."""


def lora_trainer(run_dir, cfg, crash_at_call: int | None = None):
    """A real Trainer: tiny GPT-2 + LoRA (r=4), 16 random sequences of 10 tokens, LM loss;
    ``crash_at_call`` raises InjectedCrash inside that loss call (mid-step). ``cfg``: the trainer group."""
    from lodabench import methods
    from lodabench.train.trainer import Trainer

    model = methods.apply_method(tiny("gpt2"), {"name": "lora", "r": 4, "dropout": 0.0})
    g = torch.Generator().manual_seed(0)
    examples = [torch.randint(3, 250, (10,), generator=g) for _ in range(16)]
    calls = {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        if calls["n"] == crash_at_call:
            raise InjectedCrash(f"injected at call {calls['n']}")
        logits = m(input_ids=batch["input_ids"]).logits[:, :-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 batch["input_ids"][:, 1:].reshape(-1))

    return Trainer(model, cfg, seed=1, run_dir=run_dir, train_examples=examples,
                   collate=lambda xs: {"input_ids": torch.stack(xs)}, loss_fn=loss_fn)
