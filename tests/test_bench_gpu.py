"""`make bench-gpu` (scripts/bench_gpu.py -> lodabench.bench.gpu) on the CPU at --smoke size: every section
runs and lands in the record, PEFT's LoRA step beside ours included, and a missing peft is a skipped
section, not a crash. microsoft/LoRA's training step (gpt2_ft.py) and beam search (gpt2_beam.py) are
reached through LORA_REPO: in the every-section test a stand-in checkout with its module names and
interfaces (so the wiring is tested, not its code: the stand-in's distributed functions fail unless
bench/gpu_reference.py replaces them, its loss is per-sample and views its labels, as the real ones);
test_real_lora_repo runs the real code when LORA_REPO names a checkout. No timing assertion."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lodabench.bench import gpu, gpu_reference, gpu_steps
from lodabench.io import read_json
from lodabench.paths import REPO_ROOT

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# The modules of a microsoft/LoRA checkout that bench/gpu_reference.py imports, as stand-ins.
STANDIN = {
    "loralib/__init__.py": """
        def mark_only_lora_as_trainable(model):
            for n, p in model.named_parameters():
                p.requires_grad_("lora" in n)
    """,
    "examples/NLG/src/model.py": """
        import torch
        class GPT2Config:
            def __init__(self, n_embd=768, n_layer=12, n_head=12, lora_attn_dim=0, lora_attn_alpha=128, lora_dropout=0.0):
                self.n_embd = n_embd
        class GPT2LMModel(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                self.wte = torch.nn.Embedding(50257, config.n_embd)
                self.lora_A = torch.nn.Linear(config.n_embd, 4, bias=False)
            def forward(self, ids, lm_labels=None, lm_mask=None, past=None, len_past=None, label_smooth=0.0):
                h = self.lora_A(self.wte(ids))
                if lm_labels is None:
                    return h, past
                lm_labels.view(-1)  # as the real model: fails on a non-contiguous slice
                return h, (h.mean(-1) * lm_mask).sum(-1)  # per sample, as the real one (gpt2_ft.py takes .mean())
    """,
    "examples/NLG/src/optimizer.py": "from torch.optim import AdamW as _A\n"
                                     "class AdamW(_A):\n"
                                     "    def __init__(self, params, correct_bias=True, **kw):\n"
                                     "        super().__init__(params, **kw)\n",
    "examples/NLG/src/gpu.py": """
        def distributed_gather(args, tensor):
            raise RuntimeError("Default process group has not been initialized")
        def distributed_sync(args):
            raise RuntimeError("Default process group has not been initialized")
    """,
    "examples/NLG/src/data_utils.py": """
        def padding_tokens(tokens, max_seq_length, pad_token, direct, max_context_length=0):
            tokens = tokens[-(max_context_length or max_seq_length):]
            return tokens + [pad_token] * (max_seq_length - len(tokens)), len(tokens)
    """,
    "examples/NLG/src/gpt2_beam.py": """
        import json, os
        import torch
        from gpu import distributed_gather, distributed_sync
        def _add_beam_candidate(history):
            return history / history.shape[-1] ** args.length_penalty  # the module-level args, as the real one
        def beam(model, data_iter, args):
            model.eval()
            out = {}
            with torch.no_grad():
                for data in data_iter:
                    query = data["query"].to(args.device)
                    history = query[:, :1].repeat(args.beam, 1).float()
                    for i in range(args.eval_len):
                        logits, _ = model(query[:, : data["query_len"].max() + i])
                        history = _add_beam_candidate(torch.cat((history, logits[:, -1, :1].repeat(args.beam, 1)), 1))
                    ids = distributed_gather(args, data["id"])
                    distributed_sync(args)
                    out.update({int(i): history.shape[-1] for i in ids.view(-1)})
            with open(os.path.join(args.work_dir, args.output_file), "w") as f:
                f.write(json.dumps(out))
    """,
}


@pytest.fixture
def lora_repo(tmp_path):
    """The stand-in checkout; afterwards its modules (``loralib``, ``model``, ...) leave sys.modules and
    its folders sys.path, so a later test of this worker imports the real loralib, not the stand-in."""
    for rel, text in STANDIN.items():
        path = tmp_path / "LoRA" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    saved_path = list(sys.path)
    saved = {k: m for k, m in sys.modules.items() if k.split(".")[0] in gpu_reference._LORA_MODULES}
    yield tmp_path / "LoRA"
    sys.path[:] = saved_path
    for key in [k for k in sys.modules if k.split(".")[0] in gpu_reference._LORA_MODULES]:
        del sys.modules[key]
    sys.modules.update(saved)


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
    s_loda = record["s_loda"]
    assert {"dense@0.4", "sparse_csr@0.6"} <= set(s_loda["train_ms"]) and "semi24@0.5" in s_loda["unavailable"]
    ref = record["reference"]
    assert set(ref["step_ms"]) == {"gpt2_ft", "lora/eager_fused"} and ref["ours_tokens_per_s_over_reference"]["median"] > 0
    peft = record["peft"]
    assert set(peft["step_ms"]) == {f"{w}/{m}" for w in ("lora", "peft") for m in ("eager_fused", "eager_torch_adamw")}
    assert peft["trainable_params"]["lora"] == peft["trainable_params"]["peft"] > 0  # module doc: same count
    assert peft["lora_over_peft"]["eager_fused"]["median"] > 0 and "c_attn" in peft["config"]
    ref_beam = record["decode"]["reference"]
    assert set(record["decode"]["items_per_s"]) == {"batched", "one_at_a_time", "lora_repo/batched",
                                                    "lora_repo/one_at_a_time"} and ref_beam["unavailable"] == {}
    assert set(ref_beam["ours_items_per_s_over_reference"]) == {"batched", "one_at_a_time"}
    assert [g["goal"] for g in record["goals"]][0].startswith("LoDA step") and len(record["goals"]) == 5
    assert all(g["measured"] is not None for g in record["goals"]), record["goals"]


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


def test_a_missing_peft_is_a_skipped_section(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    rec = gpu.Record(tmp_path / "r.json", {"skipped": {}, "errors": {}}, budget_s=60)
    assert rec.section("peft", lambda: gpu_reference.peft_section(None, gpu_steps.SMOKE, 1, "cpu", rec.log)) is None
    assert "peft" not in rec.data and rec.data["errors"] == {} and "peft is not installed" in rec.data["skipped"]["peft"]
    assert read_json(tmp_path / "r.json")["skipped"]["peft"] == rec.data["skipped"]["peft"]


@pytest.mark.slow  # ~15 s with the real checkout on the shared 2-core machine
def test_real_lora_repo(tmp_path, lora_repo):
    """gpt2_ft.py's step and gpt2_beam.py's beam() from the checkout LORA_REPO names (the real code: the
    stand-in above cannot catch a wrong call into it); under CI=true without LORA_REPO, the stand-in."""
    repo = Path(os.environ["LORA_REPO"]) if os.environ.get("LORA_REPO") else None
    if repo is None or not (repo / "examples" / "NLG" / "src" / "gpt2_beam.py").is_file():
        if not IN_CI:
            pytest.skip("LORA_REPO does not name a microsoft/LoRA checkout (git clone https://github.com/microsoft/LoRA); "
                        "test_smoke_record_has_every_section covers the wiring with a stand-in")
        repo = lora_repo
    base = gpu_steps.base_model(True, "cpu")
    ref = gpu_reference.reference_section(repo, base, True, gpu_steps.SMOKE, 1, "cpu", print)
    assert ref["step_ms"]["gpt2_ft"]["median"] > 0
    prompts, new = gpu_steps.decode_prompts(True)
    theirs = gpu_reference.their_beam(repo, base, prompts, new, 1, True, "cpu", print)
    assert theirs[2]["unavailable"] == {} and theirs[1] == {"lora_repo/batched": 2, "lora_repo/one_at_a_time": 1}
    dec = gpu.decode_section(base, True, 1, "cpu", print, theirs)
    assert dec["reference"]["ours_items_per_s_over_reference"]["batched"]["median"] > 0
