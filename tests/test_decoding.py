"""Decoder tests: LoRA beam search semantics, caching/batching invariance, HF generate equivalence.

Tiny random GPT-2 (vocab 48) for the search itself: small enough that a straightforward reference
(no cache, one prompt at a time, Python loops) is cheap. The init std is large so next-token
distributions are peaked and score ties (where any two correct implementations may legitimately
differ) do not occur. EOS ids are chosen among tokens the model actually emits, and the tests
assert that both finished-with-EOS and ran-to-max-length hypotheses occur, so both paths run.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lodabench.tasks.decoding import (
    DecodingConfig,
    apply_repetition_penalty,
    ban_repeated_ngrams,
    beam_search,
    clean_output,
    decode,
    decode_hf,
    decoding_config,
    eos_token_ids,
    generate_tokens,
    hf_generate_kwargs,
    left_pad,
    tokens_to_text,
)
from lodabench.errors import ConfigError

torch.set_num_threads(1)

VOCAB = 48
PAD = 0
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def tiny_gpt2(vocab: int = VOCAB, seed: int = 0, n_embd: int = 32) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    conf = GPT2Config(
        vocab_size=vocab, n_embd=n_embd, n_layer=2, n_head=2, n_positions=256,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, initializer_range=0.2,
        bos_token_id=0, eos_token_id=0,
    )
    return GPT2LMHeadModel(conf).eval()


@pytest.fixture(scope="module")
def model() -> GPT2LMHeadModel:
    return tiny_gpt2()


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, 9, (6,), generator=g).tolist()
    return [torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in lengths]


@pytest.fixture(scope="module")
def eos(model, prompts) -> list[int]:
    """Two tokens the model emits now and then under greedy decoding (3rd and 4th most frequent).

    The most frequent ones end every hypothesis at once; these give a mix of hypotheses that
    finish with EOS and ones that run to max_new_tokens (asserted in the tests).
    """
    counts = collections.Counter(t for p in prompts for t in naive_greedy(model, p, 12, eos=[]))
    return [t for t, _ in counts.most_common(4)[2:4]]


def cfg(**kw) -> DecodingConfig:
    base = dict(num_beams=4, length_penalty=0.9, no_repeat_ngram_size=3, max_new_tokens=10,
                batch_size=4, extra_eos=[], progress=False)
    base.update(kw)
    return decoding_config(base)


@torch.no_grad()
def next_logits(model, tokens: list[int]) -> torch.Tensor:
    """Full forward, no cache, no padding: the last position's logits."""
    return model(input_ids=torch.tensor([tokens])).logits[0, -1].float()


def naive_greedy(model, prompt, max_new, eos) -> list[int]:
    out: list[int] = []
    for _ in range(max_new):
        out.append(int(next_logits(model, prompt + out).argmax()))
        if out[-1] in eos:
            break
    return out


def lora_reference(model, prompt, c: DecodingConfig, eos) -> list[int]:
    """gpt2_beam.py's search written plainly: no cache, one prompt, Python loops over beams.

    Processors on logits over the generated tokens, then log(softmax); the top num_beams of
    beams x vocab continue, those ending in EOS leave as finished (score / len**lp, strictly
    better replaces); at max length all top num_beams are scored with len = max_new_tokens.
    """
    beams = [([], torch.tensor(0.0))]
    best, best_tokens = -math.inf, None
    for step in range(c.max_new_tokens):
        cands = []
        for b, (gen, score) in enumerate(beams):
            logits = next_logits(model, prompt + gen).clone()
            for t in set(gen):
                logits[t] = logits[t] * c.repetition_penalty if logits[t] < 0 else logits[t] / c.repetition_penalty
            if step < c.min_new_tokens:
                logits[eos] = -math.inf
            n = c.no_repeat_ngram_size
            if n > 0 and len(gen) >= n - 1:
                prefix = gen[len(gen) - n + 1 :]
                for i in range(len(gen) - n + 1):
                    if gen[i : i + n - 1] == prefix:
                        logits[gen[i + n - 1]] = -math.inf
            logp = torch.log(torch.softmax(logits, -1))
            cands += [(float(score + logp[v]), b, v, score + logp[v]) for v in range(logp.shape[0])]
        cands.sort(key=lambda x: -x[0])
        survivors = []
        for _, b, v, s in cands[: c.num_beams]:
            gen = beams[b][0] + [v]
            if v in eos or step == c.max_new_tokens - 1:
                final = float(s / float(len(gen) ** c.length_penalty))
                if final > best:
                    best, best_tokens = final, gen
            if v not in eos:
                survivors.append((gen, s))
        beams = survivors
    return best_tokens


def has_repeated_ngram(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


# ----------------------------------------------------------------------------- config


def test_config_validation_names_key_and_fix():
    with pytest.raises(ConfigError, match="beam_size"):
        decoding_config({"beam_size": 4})
    with pytest.raises(ConfigError, match=r"decoding.impl='beam'"):
        decoding_config({"impl": "beam"})
    with pytest.raises(ConfigError, match="num_beams"):
        decoding_config({"num_beams": 0})
    with pytest.raises(ConfigError, match="extra_eos"):
        decoding_config({"extra_eos": "\n\n"})


def test_decoding_group_composes():
    from omegaconf import OmegaConf

    from lodabench.config.schema import compose

    beam = decoding_config(compose([]).decoding)  # a DictConfig, as run.py passes it
    greedy = decoding_config(OmegaConf.to_container(compose(["decoding=greedy"]).decoding))
    assert (beam.num_beams, beam.length_penalty, beam.no_repeat_ngram_size, beam.max_new_tokens) == (10, 0.9, 4, 64)
    assert beam.impl == "lora" and beam.extra_eos == ("\n\n",) and beam.repetition_penalty == 1.0
    assert greedy.num_beams == 1 and greedy.no_repeat_ngram_size == 4
    assert decoding_config(beam, length_penalty=0.8).length_penalty == 0.8


# ----------------------------------------------------------------------------- processors


def test_processors_match_plain_loops():
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(5, 12, generator=g)
    context = torch.randint(0, 12, (5, 9), generator=g)
    context[0] = torch.tensor([1, 2, 1, 2, 1, 2, 1, 2, 1])  # forces bans
    for n in (1, 2, 3, 4):
        got = ban_repeated_ngrams(scores.clone(), context, n)
        for r, row in enumerate(context.tolist()):
            banned = {row[i + n - 1] for i in range(len(row) - n + 1) if row[i : i + n - 1] == row[len(row) - n + 1 :]}
            assert {t for t in range(12) if got[r, t] == -math.inf} == banned
    got = apply_repetition_penalty(scores, context, 1.5)
    for r, row in enumerate(context.tolist()):
        for t in range(12):
            s = scores[r, t]
            want = (s * 1.5 if s < 0 else s / 1.5) if t in row else s
            assert torch.equal(got[r, t], want)


# ----------------------------------------------------------------------------- search


@pytest.mark.parametrize("hf_compatible", [False, True])
def test_beam1_is_greedy(model, prompts, eos, hf_compatible):
    c = cfg(num_beams=1, no_repeat_ngram_size=0, max_new_tokens=8, hf_compatible=hf_compatible)
    got = beam_search(model, prompts, c, eos, PAD)
    assert got == [naive_greedy(model, p, 8, eos) for p in prompts]
    assert any(g[-1] in eos for g in got) and not all(g[-1] in eos for g in got)
    # Where LoRA's and HF's rules coincide (beam 1, no n-gram/repetition/min-length rule) both
    # modes equal generate's greedy search.
    assert got == generate_tokens(model, prompts, c, eos, PAD)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(length_penalty=0.8, no_repeat_ngram_size=2),
        dict(length_penalty=0.0, no_repeat_ngram_size=0, num_beams=3),
        dict(repetition_penalty=1.3, no_repeat_ngram_size=4, min_new_tokens=2),
    ],
)
def test_lora_search_matches_plain_reference(model, prompts, eos, kw):
    """Cached, batched, left-padded, early-stopped search == no-cache one-by-one reference."""
    c = cfg(**kw)
    got = beam_search(model, prompts, c, eos, PAD)
    want = [lora_reference(model, p, c, eos) for p in prompts]
    assert got == want
    finished = [g[-1] in eos for g in got]
    assert any(finished) and not all(finished), "both the EOS and the max-length path must run"


@pytest.mark.parametrize("hf_compatible", [False, True])
def test_batch_equals_one_by_one_and_early_stop_is_exact(model, prompts, eos, hf_compatible):
    c = cfg(hf_compatible=hf_compatible, max_new_tokens=14)
    batched = beam_search(model, prompts, c, eos, PAD)
    assert batched == [beam_search(model, [p], c, eos, PAD)[0] for p in prompts]
    assert batched == beam_search(model, prompts, decoding_config(c, early_stop=False), eos, PAD)
    assert batched == beam_search(model, prompts, c, eos, PAD)  # deterministic


def test_no_repeat_ngram_holds(model, prompts, eos):
    for n in (2, 3):
        for p, out in zip(prompts, beam_search(model, prompts, cfg(no_repeat_ngram_size=n, max_new_tokens=16), eos, PAD)):
            assert not has_repeated_ngram(out, n)  # LoRA: over generated tokens
        c = cfg(no_repeat_ngram_size=n, max_new_tokens=16, hf_compatible=True)
        for p, out in zip(prompts, beam_search(model, prompts, c, eos, PAD)):
            assert not has_repeated_ngram(p + out, n)  # HF: prompt included


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(length_penalty=0.8, no_repeat_ngram_size=2, num_beams=5),
        dict(length_penalty=-0.5, no_repeat_ngram_size=4, repetition_penalty=1.3),
        dict(length_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=3, max_new_tokens=16),
    ],
)
def test_hf_compatible_equals_generate(model, prompts, eos, kw):
    """Our decoder with hf_compatible=true == model.generate token for token (batched, padded)."""
    c = cfg(hf_compatible=True, **kw)
    ours = beam_search(model, prompts, c, eos, PAD)
    theirs = generate_tokens(model, prompts, c, eos, PAD)
    assert ours == theirs
    assert any(o[-1] in eos for o in ours)


def test_lora_and_hf_rules_differ_where_documented(model, eos):
    """A prompt n-gram is banned by HF's rule only; the two modes must then disagree somewhere."""
    prompts = [[t, t + 1, t + 2] * 2 for t in range(3, 40, 4)]
    c = cfg(no_repeat_ngram_size=2, max_new_tokens=8)
    lora = beam_search(model, prompts, c, eos, PAD)
    hf = beam_search(model, prompts, decoding_config(c, hf_compatible=True), eos, PAD)
    assert lora != hf
    assert lora == [lora_reference(model, p, c, eos) for p in prompts]


class Wrapper(torch.nn.Module):
    """A method wrapper (prefix/prompt style): same call signature, no `generate`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          past_key_values=past_key_values, use_cache=use_cache)


def test_wrapper_without_generate_and_training_mode_restored(model, prompts, eos):
    from lodabench.tasks.decoding import decode_tokens

    c = cfg()
    want = beam_search(model, prompts, c, eos, PAD)
    wrapped = Wrapper(tiny_gpt2()).train()
    assert decode_tokens(wrapped, prompts, c, eos, PAD) == want
    assert wrapped.training  # decode switches to eval for the call and restores the mode
    with pytest.raises(ConfigError, match="generate"):
        decode_tokens(wrapped, prompts, decoding_config(c, impl="hf"), eos, PAD)


# ----------------------------------------------------------------------------- text


def test_extra_eos_must_be_one_token():
    class Tok:
        eos_token_id = 7

        def encode(self, text, add_special_tokens=False):
            return {"\n\n": [3, 3], "<sep>": [9]}[text]

    assert eos_token_ids(Tok(), decoding_config({"extra_eos": ["<sep>"]})) == [7, 9]
    with pytest.warns(UserWarning, match="2 tokens"):
        assert eos_token_ids(Tok(), decoding_config({"extra_eos": ["\n\n", "<sep>"]})) == [7, 9]


def test_clean_output_cuts_like_gpt2_decode():
    cut = ["<|endoftext|>", "\n\n"]
    assert clean_output(" The Vaults is a pub.<|endoftext|> junk", cut) == "The Vaults is a pub."
    assert clean_output(" A.\n\nB.", cut) == "A."
    assert clean_output(" line one\nline two \n", cut) == "line one line two"
    assert clean_output("\n\nall cut", cut) == ""


def test_real_tokenizer_eos_and_decode_paths(gpt2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir))
    c = decoding_config({"extra_eos": ["\n\n"]})
    assert eos_token_ids(tok, c) == [50256, 628]  # LoRA README: default 50256 + --eos_token_id 628
    text_ids = tok.encode(" There is a pub.") + [628] + tok.encode("Trailing")
    assert tokens_to_text(tok, text_ids, c) == "There is a pub."

    model = tiny_gpt2(vocab=len(tok), n_embd=16)
    g = torch.Generator().manual_seed(5)
    sources = [torch.randint(0, 50000, (n,), generator=g).tolist() for n in (3, 7, 5)]
    hf_cfg = dict(impl="hf", num_beams=3, max_new_tokens=6, batch_size=2, progress=False)
    via_ours = decode(model, tok, sources, hf_cfg)
    # The same through `generate` directly, one call per batch as decode batches them.
    direct = []
    cc = decoding_config(hf_cfg)
    for start in range(0, len(sources), 2):
        batch = sources[start : start + 2]
        ids, mask = left_pad(batch, 50256, torch.device("cpu"))
        out = model.generate(input_ids=ids, attention_mask=mask, **hf_generate_kwargs(cc, [50256, 628], 50256))
        direct += [clean_output(tok.decode(r, skip_special_tokens=False), ["<|endoftext|>", "\n\n"])
                   for r in out[:, ids.shape[1] :].tolist()]
    assert via_ours == direct == decode_hf(model, tok, sources, dict(hf_cfg, impl="lora"))
    lora_hfc = decode(model, tok, sources, dict(hf_cfg, impl="lora", hf_compatible=True))
    assert lora_hfc == via_ours
    assert decode(model, tok, [], hf_cfg) == []
