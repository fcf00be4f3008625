"""The benchmark code path on the tiny models, so it cannot rot. No timing assertions: the
machine is shared, only structure, bookkeeping and the isolation of shared-weight variants are
checked."""

from __future__ import annotations

import json

import pytest
import torch

from lodabench.bench.cli import main
from lodabench.bench.report import evaluate_goals
from lodabench.bench.timing import Stats, paired_ratio, round_robin
from lodabench.bench.train import TRAIN_METHODS
from lodabench.bench.variants import Variant, build_base, build_variant

torch.set_num_threads(1)


def test_stats_and_paired_ratio():
    s = Stats.of([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s.median, s.min, s.max, s.n) == (3.0, 1.0, 5.0, 5)
    assert s.q1 == 2.0 and s.q3 == 4.0
    r = paired_ratio({"a": [2.0, 4.0, 6.0], "b": [1.0, 2.0, 2.0]}, "a", "b")
    assert r.median == 2.0 and r.max == 3.0


def test_round_robin_rotates_and_drops_warmup():
    calls: list[str] = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    times = round_robin(fns, warmup=1, reps=3)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert calls[:3] == ["a", "b", "c"] and calls[3:6] == ["b", "c", "a"] and calls[6:9] == ["c", "a", "b"]


def test_shared_variants_do_not_leak_into_base():
    base = build_base("tiny-gpt2")
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    s_loda = build_variant(base, Variant("s", "s_loda", {"keep": 0.4}))  # prunes W_proj in place
    merged = build_variant(base, Variant("m", "dora", merged=True))  # writes W' into W0
    adapter = build_variant(base, Variant("a", "adapter_h"))  # trains the blocks' LayerNorms
    for n, p in base.named_parameters():
        assert torch.equal(p, before[n]), n
        assert not p.requires_grad, n
    # The unchanged frozen weights are shared, not copied; trainable ones are private.
    assert s_loda.transformer.wte.weight.data_ptr() == base.transformer.wte.weight.data_ptr()
    ln = adapter.transformer.h[0].ln_1.weight
    assert ln.requires_grad and ln.data_ptr() != base.transformer.h[0].ln_1.weight.data_ptr()
    assert merged.transformer.h[0].attn.c_attn.weight.data_ptr() != base.transformer.h[0].attn.c_attn.weight.data_ptr()
    pruned = s_loda.transformer.h[0].attn.c_attn.base_layer.weight
    assert (pruned == 0).float().mean() > 0.5


def test_quick_bench_writes_a_complete_record(tmp_path):
    out = tmp_path / "rec.json"
    rc = main(["--quick", "--suites", "train,infer,decode", "--warmup", "0", "--reps", "1",
               "--train-models", "tiny-roberta", "--out", str(out)])
    rec = json.loads(out.read_text())
    assert rc == 0, rec["errors"]
    assert rec["machine"]["torch_num_threads"] == 1 and rec["machine"]["torch"] == torch.__version__
    (train,) = rec["train"]
    shape = train["shapes"]["2x16"]
    assert set(shape["step_ms"]) == {*TRAIN_METHODS, "peft_lora"}
    # Same trainable count for our LoRA and PEFT's on RoBERTa (query/value, same r, same head).
    assert train["params"]["lora"]["trainable"] == train["params"]["peft_lora"]["trainable"]
    ops = {k: v["aten_ops_q_module_fwd_bwd"] for k, v in train["params"].items()}
    assert ops["prefix"] is None and ops["lora"] > 0 and ops["peft_lora"] > 0
    assert ops["loda"] > ops["lora"]  # LayerNorm + two r x r maps + activation, forward and backward
    mem = shape["memory_mib"]
    assert all(m["activations"] > 0 and m["total"] >= m["activations"] for m in mem.values())
    # AdamW keeps two moments per trainable value: ft_qv (all of Wq, Wv) holds far more than LoRA.
    assert mem["ft_qv"]["optimizer"] > 2 * mem["lora"]["optimizer"] > 0
    assert shape["ratio_to_lora"]["lora"]["median"] == 1.0
    assert rec["infer"]["forward_ratio_to_base"]["base"]["median"] == 1.0
    assert "r_loda_R32_frozen_only" in rec["infer"]["projection_ms"]
    assert rec["decode"]["identical_outputs"] is True
    goals = {(g["goal"], g["where"]) for g in rec["goals"]}
    assert ("lora <= 1.00x PEFT LoRA", "tiny-roberta train step 2x16") in goals
    assert all(g["met"] in (True, False) for g in rec["goals"])
    md = out.with_suffix(".md").read_text()
    assert "## Goals" in md and "## Training step: tiny-roberta 2x16" in md


def test_goals_report_misses_with_margin():
    rec = {"train": [{"model": "m", "family": "roberta", "shapes": {"1x8": {
        "ratio_to_lora": {"loda": {"median": 1.10, "q1": 1.0, "q3": 1.2}},
        "ratio_to_peft_lora": {"lora": {"median": 0.95, "q1": 0.9, "q3": 1.0}}}}}]}
    goals = {g["goal"]: g for g in evaluate_goals(rec)}
    assert goals["loda <= 1.05x lora"]["met"] is False
    assert goals["loda <= 1.05x lora"]["margin"] == pytest.approx(1.10 / 1.05 - 1, abs=1e-4)
    assert goals["loda <= 1.05x lora"]["within_noise"] is True  # 1.05 lies in [1.0, 1.2]
    assert goals["lora <= 1.00x PEFT LoRA"]["met"] is True
    assert goals["condlora <= 1.05x lora"]["met"] is None  # not measured
