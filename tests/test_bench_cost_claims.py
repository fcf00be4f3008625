"""``python -m lodabench.bench cost-claims`` on the tiny models: the record's structure, the
verdict logic and the variants it times. No timing assertions (the machine is shared)."""

from __future__ import annotations

import json

import torch

from lodabench.bench.cli import main
from lodabench.bench.cost_claims import condlora_models, paper_table4, rebuild_fn, verdict
from lodabench.bench.report import rerender
from lodabench.bench.timing import Stats
from lodabench.bench.variants import build_base
from lodabench.methods.condlora import CondLoRAAdapter
from lodabench.paths import shared_dir

torch.set_num_threads(1)


def test_verdict_reads_the_iqr_against_one():
    assert verdict(Stats.of([0.90, 0.92, 0.95, 0.97]), "faster", "slower") == "faster"
    assert verdict(Stats.of([1.02, 1.05, 1.10, 1.20]), "faster", "slower") == "slower"
    v = verdict(Stats.of([0.95, 0.99, 1.02, 1.08]), "faster", "slower")
    assert v.startswith("within noise") and "spans 1.0" in v


def test_condlora_variants_time_the_fused_and_the_reference_rebuild():
    base = build_base("tiny-roberta")
    models = condlora_models(base, {"r": 8, "alpha": 8.0}, "cpu")
    flags = {k: {m.fused_rebuild for m in mod.modules() if isinstance(m, CondLoRAAdapter)} for k, mod in models.items()}
    assert flags == {"lora": set(), "condlora": {True}, "condlora_reference": {False}}
    assert models["lora"].lodabench_method["config"]["r"] == 8
    model = models["condlora"]
    rebuild_fn(model)()  # runs the A, B products and their backward, leaves no gradient behind
    assert all(p.grad is None for p in model.parameters())


def test_paper_table4_is_read_from_the_shared_csv():
    table = paper_table4()
    if shared_dir() is None:
        assert table is None
        return
    assert table["examples_per_s"] == {"lora": 39.652, "condlora": 40.303}
    assert table["time_ratio_condlora_to_lora"] < 1.0  # the paper's claim: CondLoRA faster


def test_quick_cost_claims_record(tmp_path):
    out = tmp_path / "claims.json"
    assert main(["cost-claims", "--quick", "--warmup", "0", "--reps", "1", "--keeps", "0.4,0.6", "--reference-step",
                 "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    c, s = rec["condlora"], rec["s_loda"]
    assert set(c["rebuild_ms"]) == {"fused", "reference"} and c["rebuild_ms"]["fused"]["n"] == 30
    shape = c["shapes"]["2x16"]
    assert set(shape["step_ms"]) == {"lora", "condlora", "condlora_reference"} and shape["fused_vs_reference_step"]
    assert shape["verdict"] and c["claim"] and 0 < shape["rebuild_share_of_condlora_step"]
    assert set(s["verdict_measured"]["s_loda_keep0.4_sparse_csr"]) == {"forward", "qkv_projection"}
    assert c["clock"] == s["clock"] == "cpu" and shape["wall_clock"]["ratio_to_lora"] and s["wall_clock"]["forward_ratio_to_base"]
    assert set(s["csr_speedup_vs_dense"]) == {"0.4", "0.6"}
    assert set(s["forward_ms"]) == {"base", "s_loda_keep0.4_dense", "s_loda_keep0.4_sparse_csr",
                                    "s_loda_keep0.6_dense", "s_loda_keep0.6_sparse_csr"}
    macs = s["macs_per_token_layer"]
    assert macs["s_loda_keep0.4_sparse_csr"]["executed"] < macs["s_loda_keep0.4_dense"]["executed"]
    assert macs["s_loda_keep0.4_dense"]["executed"] > macs["base"]["executed"]  # zeros multiplied + adapter
    assert "spans 1.0" in rec["noise_note"] or "round-robin" in rec["noise_note"]
    md = out.with_suffix(".md").read_text()
    assert "Verdict on this CPU" in md and "CSR vs dense" in md and "semi24" in md
    out.with_suffix(".md").unlink()
    assert main(["cost-claims", "--markdown-from", str(out)]) == 0
    assert out.with_suffix(".md").read_text() == md
    rerender(str(out))  # `python -m lodabench.bench.report results/bench/*.json` keeps it a cost-claims record
    assert out.with_suffix(".md").read_text() == md and "goals" not in json.loads(out.read_text())


def test_clocked_records_wall_and_cpu_time_of_the_same_calls():
    from lodabench.bench.cost_claims import clocked

    t = clocked({"a": lambda: sum(range(20000)), "b": lambda: None}, warmup=1, reps=3, device="cpu")
    assert {k: len(v) for k, v in t["wall"].items()} == {k: len(v) for k, v in t["cpu"].items()} == {"a": 3, "b": 3}
    assert all(x >= 0 for v in t["cpu"].values() for x in v)
