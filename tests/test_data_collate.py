"""Sequence building as LoRA's gpt2_encode.py + FT_Dataset, with the real GPT-2 tokenizer."""

from __future__ import annotations

import pytest
import torch

from lodabench.tasks import get_task
from lodabench.tasks.collate import (
    CausalLMCollator,
    ClassificationCollator,
    encode_pair,
    encode_source,
    encode_text_pair,
    pad_prompts,
)

EOS = 50256
SOURCE = "name : Blue Spice | Type : coffee shop | area : city centre"
TARGET = "A coffee shop in the city centre area called Blue Spice."


@pytest.fixture(scope="module")
def tok(gpt2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir))


def test_sequence_layout_and_mask(tok):
    enc = encode_pair(tok, SOURCE, TARGET, max_length=512)
    ids, mask = enc["input_ids"], enc["loss_mask"]
    src = tok.encode(SOURCE)
    tgt = tok.encode(" " + TARGET)  # LoRA encodes ' ' + completion
    assert ids == src + [EOS] + tgt + [EOS]
    assert mask == [0] * (len(src) + 1) + [1] * (len(tgt) + 1)
    # the masked tokens are exactly the target and the final EOS
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == " " + TARGET + "<|endoftext|>"
    assert tok.decode([t for t, m in zip(ids, mask) if not m]) == SOURCE + "<|endoftext|>"
    assert tok.encode("Hello world") == [15496, 995]  # the real GPT-2 BPE


def test_custom_separator(tok):
    enc = encode_pair(tok, "a", "b", max_length=16, sep_token_id=628)
    assert enc["input_ids"] == [64, 628, 275, EOS] and enc["loss_mask"] == [0, 0, 1, 1]


def test_truncation_cuts_the_end_as_lora_does(tok):
    full = encode_pair(tok, SOURCE, TARGET, max_length=512)
    n_src = full["loss_mask"].index(1)
    cut = encode_pair(tok, SOURCE, TARGET, max_length=n_src + 3)
    assert cut["input_ids"] == full["input_ids"][: n_src + 3]  # source intact, target tail gone
    assert sum(cut["loss_mask"]) == 3 and cut["input_ids"][-1] != EOS
    tiny = encode_pair(tok, SOURCE, TARGET, max_length=4)
    assert tiny["input_ids"] == full["input_ids"][:4] and sum(tiny["loss_mask"]) == 0


def test_literal_endoftext_in_text_is_not_a_special_token(tok):
    enc = encode_pair(tok, "x <|endoftext|>", "y", max_length=64)
    assert enc["input_ids"].count(EOS) == 2  # only the separator and the final EOS


def test_mask_counts_on_real_e2e_test_pairs(tok, data_root):
    task = get_task({"name": "e2e", "max_train_examples": 300}, data_root)
    for source, target in task.train_pairs("test"):
        enc = encode_pair(tok, source, target, max_length=512)
        assert sum(enc["loss_mask"]) == len(tok.encode(" " + target)) + 1
        assert enc["input_ids"][enc["loss_mask"].index(1) - 1] == EOS


def test_encode_source_keeps_the_last_tokens(tok):
    prompt = encode_source(tok, SOURCE)
    assert prompt == tok.encode(SOURCE) + [EOS]
    assert encode_source(tok, SOURCE, max_length=5) == prompt[-5:]


def test_causal_collator_right_pads(tok):
    a = encode_pair(tok, SOURCE, TARGET, max_length=512)
    b = encode_pair(tok, "a", "b", max_length=512)
    batch = CausalLMCollator()([a, b])
    n = len(a["input_ids"])
    assert batch["input_ids"].shape == (2, n)
    assert batch["input_ids"][1].tolist() == b["input_ids"] + [0] * (n - 4)
    assert batch["attention_mask"][1].tolist() == [1] * 4 + [0] * (n - 4)
    assert batch["loss_mask"].dtype == torch.float
    assert batch["labels"][1].tolist() == [-100, -100, 275, EOS] + [-100] * (n - 4)
    assert (batch["labels"][0] != -100).sum().item() == sum(a["loss_mask"])


def test_pad_prompts_left():
    out = pad_prompts([[1, 2, 3], [4]], pad_token_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3], [0, 0, 4]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_classification_tokenization(tok, data_root):
    # GPT-2 has no pad token (RoBERTa's has <pad>); setting one does not change encode_pair
    tok.pad_token = tok.eos_token
    rows = get_task({"name": "rte"}, data_root).rows("dev")[:4]
    batch = ClassificationCollator(tok, max_length=32)(rows)
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] <= 32
    assert batch["labels"].tolist() == [r.label for r in rows] and batch["labels"].dtype == torch.long
    single = encode_text_pair(tok, rows[0].text_a, rows[0].text_b, max_length=32)
    assert len(single["input_ids"]) == 32  # long premise: truncated to max_length
    assert batch["input_ids"][0].tolist() == single["input_ids"] + [EOS] * (batch["input_ids"].shape[1] - 32)
    stsb = get_task({"name": "stsb"}, data_root).rows("dev")[:2]
    reg = ClassificationCollator(tok, max_length=64, is_regression=True)(stsb)
    assert reg["labels"].dtype == torch.float and reg["labels"].tolist() == [r.label for r in stsb]
