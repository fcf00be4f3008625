"""Prompt tuning as Lester et al. (2021) ran it: majority-vote ensembling (probability averaging as
the option), and the sampled-vocabulary init drawn from the 5,000 most frequent tokens of a
committed, reproducible count list (not from ids 0-4,999)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lodabench.errors import ConfigError
from lodabench.methods import token_ranks_gpt2
from lodabench.methods.prompt import (
    PromptConfig,
    apply_prompt,
    majority_vote_logits,
    mean_prob_logits,
    resolved_vocab_source,
)
from lodabench.paths import REPO_ROOT
from test_methods_prefix_prompt import _row_ids, batch, tiny

torch.set_num_threads(1)
GPT2_VOCAB = token_ranks_gpt2.VOCAB_SIZE


def _logits_from_probs(probs: list[list[float]]) -> torch.Tensor:
    """(N, 1, C) logits whose softmax is ``probs`` (one example)."""
    return torch.tensor(probs).log().unsqueeze(1)


# ----------------------------------------------------------------------------- ensembling rules
def test_majority_vote_differs_from_probability_averaging():
    # Two prompts lean to class 0, one is sure of class 1: the vote says 0, the average says 1.
    per_prompt = _logits_from_probs([[0.55, 0.45], [0.55, 0.45], [0.01, 0.99]])
    assert majority_vote_logits(per_prompt).argmax(-1).item() == 0
    assert mean_prob_logits(per_prompt).argmax(-1).item() == 1
    vote = majority_vote_logits(per_prompt).exp()
    torch.testing.assert_close(vote.sum(-1), torch.ones(1))  # a distribution
    torch.testing.assert_close(vote[0], torch.tensor([2 + 0.37, 1 + 0.63]) / 4)


def test_majority_vote_ties_go_to_the_higher_mean_probability():
    per_prompt = _logits_from_probs([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])  # one vote each for 0 and 1
    assert majority_vote_logits(per_prompt).argmax(-1).item() == 1  # mean 0.4 vs 0.5
    five = _logits_from_probs([[0.34, 0.33, 0.33]] * 3 + [[0.0001, 0.9998, 0.0001]] * 2)
    assert majority_vote_logits(five).argmax(-1).item() == 0  # 3 votes beat 2, whatever the confidence


def test_model_ensemble_uses_the_configured_rule():
    torch.manual_seed(11)
    x, mask = batch(seed=3)
    rows = {}
    for rule in ("majority_vote", "mean_prob"):
        torch.manual_seed(11)
        model = apply_prompt(tiny("roberta", init_range=0.3), PromptConfig(num_virtual_tokens=3, init="random",
                                                                          num_prompts=5, ensemble=rule)).eval()
        with torch.no_grad():
            out = model(input_ids=x, attention_mask=mask)
        rows[rule] = out
    per = rows["mean_prob"].per_prompt_logits
    torch.testing.assert_close(rows["majority_vote"].per_prompt_logits, per, rtol=0, atol=0)  # same prompts
    torch.testing.assert_close(rows["majority_vote"].logits, majority_vote_logits(per), rtol=0, atol=1e-6)
    torch.testing.assert_close(rows["mean_prob"].logits, mean_prob_logits(per), rtol=0, atol=1e-6)
    votes = torch.nn.functional.one_hot(per.argmax(-1), per.shape[-1]).sum(0)
    assert torch.equal(rows["majority_vote"].logits.argmax(-1), (votes + per.softmax(-1).mean(0)).argmax(-1))


@pytest.mark.parametrize("rule", ["majority_vote", "mean_prob"])
def test_regression_head_averages_under_either_rule(rule):
    torch.manual_seed(12)
    base = tiny("roberta")
    base.config.num_labels = 1
    base.classifier.out_proj = torch.nn.Linear(32, 1)
    model = apply_prompt(base, PromptConfig(num_virtual_tokens=2, init="random", num_prompts=3, ensemble=rule)).eval()
    x, mask = batch()
    with torch.no_grad():
        out = model(input_ids=x, attention_mask=mask)
    torch.testing.assert_close(out.logits, out.per_prompt_logits.mean(0), rtol=0, atol=0)


def test_majority_vote_on_a_causal_lm_ensemble_is_refused():
    with pytest.raises(ConfigError, match="method.ensemble=majority_vote"):
        apply_prompt(tiny("gpt2"), PromptConfig(init="random", num_prompts=2))
    apply_prompt(tiny("gpt2"), PromptConfig(init="random", num_prompts=2, ensemble="mean_prob"))
    apply_prompt(tiny("gpt2"), PromptConfig(init="random"))  # one prompt: nothing to combine


# ----------------------------------------------------------------------------- sampled-vocabulary init
def test_committed_ranks_are_a_frequency_ranking_not_the_first_ids():
    ids, counts = token_ranks_gpt2.IDS, token_ranks_gpt2.COUNTS
    assert len(ids) == len(set(ids)) == len(counts) == 5000
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert all(0 <= i < GPT2_VOCAB for i in ids)
    below = sum(i < 5000 for i in ids)
    assert below == 2699  # the id range [0, 5000) would miss 2,301 of the 5,000 most frequent


def test_sampled_vocab_draws_only_from_the_counted_top_k():
    base = tiny("gpt2", vocab=GPT2_VOCAB)
    table = base.get_input_embeddings().weight.detach()
    cfg = PromptConfig(num_virtual_tokens=100, init="sampled_vocab")
    assert resolved_vocab_source(cfg, base) == "counts"
    torch.manual_seed(13)
    ids = _row_ids(apply_prompt(base, cfg).prompt[0].detach(), table)
    assert set(ids) <= set(token_ranks_gpt2.IDS[:5000]) and len(set(ids)) == 100
    assert any(i >= 5000 for i in ids)  # ids the old [0, 5000) range could not give
    torch.manual_seed(13)
    small = apply_prompt(tiny("gpt2", vocab=GPT2_VOCAB), PromptConfig(num_virtual_tokens=30, init="sampled_vocab",
                                                                      vocab_source="counts", vocab_top_k=40))
    assert set(_row_ids(small.prompt[0].detach(), table)) <= set(token_ranks_gpt2.IDS[:40])


def test_id_range_source_keeps_the_earlier_draw():
    base = tiny("gpt2", vocab=GPT2_VOCAB)
    table = base.get_input_embeddings().weight.detach()
    torch.manual_seed(14)
    model = apply_prompt(base, PromptConfig(num_virtual_tokens=20, init="sampled_vocab", vocab_source="id_range"))
    torch.manual_seed(14)
    want = (torch.randperm(5000)[:20]).tolist()  # the earlier code: randperm(span)[:n] + low, low = 0
    assert _row_ids(model.prompt[0].detach(), table) == want


def test_auto_falls_back_to_the_id_range_without_a_list():
    cfg = PromptConfig(init="sampled_vocab", vocab_high=50)
    assert resolved_vocab_source(cfg, tiny("gpt2")) == "id_range"  # 97 ids: not GPT-2's vocabulary
    assert resolved_vocab_source(cfg, tiny("bert")) == "id_range"


@pytest.mark.parametrize(
    "cfg,model,msg",
    [
        (PromptConfig(init="sampled_vocab", vocab_source="counts"), "bert", "no committed token-count list"),
        (PromptConfig(init="sampled_vocab", vocab_source="counts", vocab_top_k=6000), "gpt2_full",
         "method.vocab_top_k=6000"),
        (PromptConfig(init="random", vocab_source="freq"), "gpt2", "method.vocab_source='freq'"),
        (PromptConfig(init="random", ensemble="vote"), "gpt2", "method.ensemble='vote'"),
        (PromptConfig(init="random", vocab_top_k=0), "gpt2", "method.vocab_top_k=0"),
    ],
)
def test_prompt_lester_config_errors(cfg, model, msg):
    net = tiny("gpt2", vocab=GPT2_VOCAB) if model == "gpt2_full" else tiny(model)
    with pytest.raises(ConfigError, match=msg):
        cfg.validate(net)


@pytest.mark.slow  # tokenizes the GLUE training text (1.4 M tokens)
def test_committed_ranks_reproduce_from_the_documented_corpus(shared, data_root):
    """scripts/make_token_ranks.py recomputes the committed JSON resource byte for byte."""
    spec = importlib.util.spec_from_file_location("make_token_ranks", REPO_ROOT / "scripts" / "make_token_ranks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tokenizer_dir = shared / "tokenizers" / "gpt2"
    text = script.render(script.ranked_counts(tokenizer_dir, data_root), tokenizer_dir, data_root)
    assert text == script.OUT.read_text(encoding="utf-8")


def test_token_ranks_ship_as_package_data():
    """An installed wheel holds the JSON only if pyproject.toml lists it as package data."""
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "methods/token_ranks_gpt2.json" in pyproject["tool"]["setuptools"]["package-data"]["lodabench"]
    assert token_ranks_gpt2.RESOURCE == "token_ranks_gpt2.json"
