"""model.pooler=mean: the classifier reads the masked mean of the token states instead of BERT's CLS
pooler. Tiny BERT built from config (random init); the real MiniLM check is in test_real_models."""

from __future__ import annotations

import pytest
import torch

from lodabench.errors import ConfigError
from lodabench.methods import apply_method
from lodabench.models.pretrained import MaskedMeanPooler, load_model

TINY_BERT = {"source": "config", "pretrained": "bert", "family": "bert",
             "config_overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                                  "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64}}


def _bert(pooler: str, num_labels: int = 1):
    torch.manual_seed(0)
    return load_model({**TINY_BERT, "pooler": pooler}, kind="sequence_classification", num_labels=num_labels).eval()


def _batch():
    ids = torch.tensor([[2, 11, 12, 3, 0, 0, 0], [2, 21, 22, 23, 24, 25, 3]])
    return ids, (ids != 0).long()


def test_mean_pooler_is_the_masked_mean_of_the_token_states():
    model = _bert("mean")
    assert isinstance(model.bert.pooler, MaskedMeanPooler)
    ids, mask = _batch()
    out = model.bert(input_ids=ids, attention_mask=mask)
    expected = (out.last_hidden_state * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(out.pooler_output, expected)


def test_mean_pooler_logits_ignore_padding():
    """Row 0 scored alone without its padding gives the same logit as inside the padded batch; with
    the mask ignored (plain mean over all positions) it would not."""
    model = _bert("mean")
    ids, mask = _batch()
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask).logits[0]
        alone = model(input_ids=ids[:1, :4], attention_mask=mask[:1, :4]).logits[0]
        unmasked = model.classifier(model.bert(input_ids=ids, attention_mask=mask).last_hidden_state[0].mean(0))
    torch.testing.assert_close(padded, alone)
    assert not torch.allclose(padded, unmasked)


def test_mean_pooler_survives_deepcopy():
    """A deep copy (apply_method callers and tests copy models) pools with its own mask."""
    import copy

    original = _bert("mean")
    clone = copy.deepcopy(original)
    ids, mask = _batch()
    with torch.no_grad():
        original(input_ids=ids[:1, :3], attention_mask=mask[:1, :3])   # leaves a (1, 3) mask on the original
        padded = clone(input_ids=ids, attention_mask=mask).logits[0]
        alone = clone(input_ids=ids[:1, :4], attention_mask=mask[:1, :4]).logits[0]
    torch.testing.assert_close(padded, alone)


def test_cls_pooler_is_the_default_and_unchanged():
    cls_model = _bert("cls")
    assert type(cls_model.bert.pooler).__name__ == "BertPooler"
    default = load_model(TINY_BERT, kind="sequence_classification", num_labels=1)
    assert type(default.bert.pooler).__name__ == "BertPooler"


@pytest.mark.parametrize("method", [{"name": "lora", "r": 2, "alpha": 4.0}, {"name": "prompt", "num_virtual_tokens": 3, "init": "random"}],
                         ids=lambda m: m["name"])
def test_mean_pooler_trains_under_a_method(method):
    """The head is trainable, the mean pooler has no parameters, and a prompt-tuned model (whose
    base sees virtual tokens plus a mask extended to cover them) still pools with a matching mask."""
    model = apply_method(_bert("mean", num_labels=2), method)
    ids, mask = _batch()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.startswith("classifier") or ".classifier." in n for n in trainable), trainable
    assert not any("pooler" in n for n in trainable), trainable
    model.train()
    logits = model(input_ids=ids, attention_mask=mask).logits
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)


def test_bad_pooler_values_name_the_key():
    with pytest.raises(ConfigError, match="model.pooler='max'"):
        _bert("max")
    roberta = {**TINY_BERT, "pretrained": "roberta", "pooler": "mean"}
    with pytest.raises(ConfigError, match="model.pooler=mean needs a BERT-family"):
        load_model(roberta, kind="sequence_classification", num_labels=1)
