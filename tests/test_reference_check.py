"""`python -m lodabench.reference check`: lodabench equals microsoft/LoRA's NLG code on every golden case
of ../shared/golden/lora_nlg and of tests/golden/lora_nlg_extra (further cases made the same way: another
seed, other E2E rows, length penalty 0.8; scripts/make_lora_reference_cases.py), and the check fails
(exit 1) on a perturbed case, exit 2 on a malformed one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import _need
from lodabench.paths import REPO_ROOT
from lodabench.reference.__main__ import main

torch.set_num_threads(1)

EXTRA_CASES = REPO_ROOT / "tests" / "golden" / "lora_nlg_extra"


@pytest.fixture(scope="module")
def lora_nlg(golden_dir: Path) -> Path:
    return _need(golden_dir / "lora_nlg", "../shared/golden/lora_nlg (microsoft/LoRA NLG golden cases)")


def _cases(root: Path) -> list[Path]:
    cases = sorted(p for p in root.iterdir() if p.is_dir())
    assert cases, f"no case folders in {root}"
    return cases


def _check_all_agree(cases: list[Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "lodabench.reference", "check", *map(str, cases)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    for case in cases:
        assert f"{case.name} (" in proc.stdout and "FAIL" not in proc.stdout
    # every kind of quantity was compared, not skipped
    for quantity in ("logits: lse", "LoRA gradients", "LoRA params after step 6", "beam token ids",
                     "hypothesis text", "reference groups"):
        assert quantity in proc.stdout, quantity


@pytest.mark.slow
def test_every_shared_case_agrees(lora_nlg):
    _check_all_agree(_cases(lora_nlg))


@pytest.mark.slow
def test_every_extra_case_agrees(gpt2_tokenizer_dir, data_root):
    """The committed cases; the tokenizer and LoRA's valid/test.txt (the optimizer rows) come from ../shared."""
    _check_all_agree(_cases(EXTRA_CASES))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_extra_cases_are_the_further_cases_the_bar_asks_for(lora_nlg):
    """Issue #18: other seeds, other rows, length penalty 0.8 -- and none is a copy of a shared case."""
    cases = _cases(EXTRA_CASES)
    shared_weights = {_sha256(c / "weights.safetensors") for c in _cases(lora_nlg)}
    for case in cases:
        assert _sha256(case / "weights.safetensors") not in shared_weights, f"{case.name}: shared weights"
        assert "Made with `python scripts/make_lora_reference_cases.py" in (case / "README.md").read_text()
    beams = [json.loads((c / "expected_beam.json").read_text()) for c in cases if (c / "expected_beam.json").exists()]
    assert any(b["settings"]["lp"] == 0.8 for b in beams)
    shared_mrs = {json.loads((c / "expected_beam.json").read_text())["settings"]["mrs"]
                  for c in _cases(lora_nlg) if (c / "expected_beam.json").exists()}
    assert all(b["settings"]["mrs"] not in shared_mrs for b in beams)
    batches = [json.loads((c / "batch.json").read_text()) for c in cases if (c / "batch.json").exists()]
    assert batches and all(b["line_indices_0based"][0] >= 8 or "test" in b["split_file"] for b in batches)


def _copy(lora_nlg: Path, name: str, tmp_path: Path) -> Path:
    src = _need(lora_nlg / name, f"golden case {name}")
    dst = tmp_path / name
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(0o644)  # the shared files are read-only
    return dst


def test_perturbed_forward_case_fails(lora_nlg, tmp_path, capsys):
    case = _copy(lora_nlg, "fwd_opt_seed1", tmp_path)
    loss_path = case / "expected_loss.json"
    loss = json.loads(loss_path.read_text())
    loss["loss_label_smooth_0.1"] += 2e-5  # twice the tolerance
    loss_path.write_text(json.dumps(loss))
    params_path = case / "expected_lora_params_after_steps.safetensors"
    params = load_file(str(params_path))
    key = "step6/transformer.h.1.attn.c_attn.v.lora_B"
    params[key] = params[key].clone()
    params[key][0, 0] += 2e-6  # twice the tolerance, one element
    save_file(params, str(params_path))
    assert main(["check", str(case)]) == 1
    out = capsys.readouterr().out
    assert "FAIL loss (label smoothing 0.1)" in out and "FAIL LoRA params after step 6" in out
    assert "ok   LoRA params after step 5" in out and "ok   LoRA gradients" in out


def test_perturbed_beam_case_fails(lora_nlg, tmp_path, capsys):
    case = _copy(lora_nlg, "beam_eos628_eval20", tmp_path)
    beam_path = case / "expected_beam.json"
    beam = json.loads(beam_path.read_text())
    beam["items"][3]["generated_ids"][1] += 1
    beam_path.write_text(json.dumps(beam))
    pred = (case / "expected_pred.txt").read_text().split("\n")
    pred[5] += " x"
    (case / "expected_pred.txt").write_text("\n".join(pred))
    assert main(["check", str(case)]) == 1
    out = capsys.readouterr().out
    assert "FAIL beam token ids (decode_tokens)" in out and "1 of 20 differ: MR 3" in out
    assert "FAIL hypothesis text" in out and "MR 5" in out
    assert "ok   reference groups" in out


def test_malformed_case_exits_2_naming_the_file(lora_nlg, tmp_path, capsys):
    case = _copy(lora_nlg, "fwd_opt_seed1", tmp_path)
    (case / "batch.json").write_text("{not json")
    assert main(["check", str(case)]) == 2
    assert f"{case / 'batch.json'}: not valid UTF-8 JSON" in capsys.readouterr().out
    (case / "expected_lora_grads.safetensors").unlink()
    assert main(["check", str(case)]) == 2
    assert f"{case / 'expected_lora_grads.safetensors'}: missing" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().out
    readme = tmp_path / "README.md"  # what a glob over a collection folder also names
    readme.write_text("cases\n")
    assert main(["check", str(readme)]) == 2
    assert main(["check", str(readme), str(tmp_path / "nowhere")]) == 2
    assert "skipped (a file, not a case folder)" in capsys.readouterr().out
