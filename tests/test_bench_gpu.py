"""`make bench-gpu` (scripts/bench_gpu.py -> lodabench.bench.gpu) on the CPU at --smoke size: every section
runs and lands in the record; microsoft/LoRA's step is timed through LORA_REPO (here a stand-in checkout
with its module names, so the wiring is tested without its code). No timing assertion."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from lodabench.bench import gpu
from lodabench.io import read_json
from lodabench.paths import REPO_ROOT

# The three modules of a microsoft/LoRA checkout that gpu.reference_section imports, as stand-ins.
STANDIN = {
    "loralib/__init__.py": """
        def mark_only_lora_as_trainable(model):
            for n, p in model.named_parameters():
                p.requires_grad_("lora" in n)
    """,
    "examples/NLG/src/model.py": """
        import torch
        class GPT2Config:
            def __init__(self, n_embd, n_layer, n_head, lora_attn_dim, lora_attn_alpha, lora_dropout):
                self.n_embd = n_embd
        class GPT2LMModel(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                self.wte = torch.nn.Embedding(50257, config.n_embd)
                self.lora_A = torch.nn.Linear(config.n_embd, 4, bias=False)
            def forward(self, ids, lm_labels=None, lm_mask=None, label_smooth=0.0):
                h = self.lora_A(self.wte(ids))
                return h, (h.mean() * lm_mask.mean())
    """,
    "examples/NLG/src/optimizer.py": "from torch.optim import AdamW as _A\n"
                                     "class AdamW(_A):\n"
                                     "    def __init__(self, params, correct_bias=True, **kw):\n"
                                     "        super().__init__(params, **kw)\n",
}


@pytest.fixture
def lora_repo(tmp_path):
    for rel, text in STANDIN.items():
        path = tmp_path / "LoRA" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path / "LoRA"


@pytest.mark.slow  # ~18 s on the shared 2-core machine
def test_smoke_record_has_every_section(tmp_path, lora_repo):
    out = tmp_path / "bench_gpu.json"
    rc = gpu.main(["--smoke", "--reps", "1", "--out", str(out), "--lora-repo", str(lora_repo)])
    record = read_json(out)
    assert rc == 0 and record["errors"] == {}, record["errors"]
    train = record["train"]
    assert set(train["step_ms"]) == {f"{m}/{mode}" for m in gpu.METHODS for mode in gpu.MODES[:2]}
    assert train["fused_speedup"].keys() == set(gpu.METHODS) and "train/compiled_fused" in record["skipped"]
    assert set(record["op_counts"]) == set(gpu.METHODS) and all(n > 0 for n in record["op_counts"].values())
    assert set(record["decode"]["items_per_s"]) == {"batched", "one_at_a_time"}
    s_loda = record["s_loda"]
    assert {"dense@0.4", "sparse_csr@0.6"} <= set(s_loda["train_ms"]) and "semi24@0.5" in s_loda["unavailable"]
    assert record["reference"]["step_ms"] > 0 and record["reference"]["ours_lora_eager_fused_over_reference"] > 0
    assert [g["goal"] for g in record["goals"]][0].startswith("LoDA step")


def test_make_bench_gpu_runs_the_script_with_the_machines_python():
    dry = subprocess.run(["make", "-n", "bench-gpu", "LORA_REPO=/x/LoRA"], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "python3 scripts/bench_gpu.py --lora-repo /x/LoRA" in dry


def test_the_script_installs_nothing_when_the_wheel_folder_is_absent(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", REPO_ROOT / "scripts" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.install(tmp_path / "no-wheels", tmp_path / "site") == "nothing to install"


def test_loda_ops_bench_counts_batched_below_per_slot():
    """bench/loda_ops.py: the batched path's count is what the record says it is, and below per slot."""
    from lodabench.bench.loda_ops import measure

    rec = measure(reps=1)
    c = rec["op_counts"]
    assert c["loda"] < c["loda_per_slot"] and c["loda_plus"] < c["loda_plus_per_slot"]
    assert rec["goal_loda_ops_within_10pct"] == (c["loda"] <= 1.10 * c["lora"])
