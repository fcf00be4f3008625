"""scripts/gpu_check.py and scripts/gpu_wheels.sh (issue #26, `make gpu-check`): the wheel plan read
from the lock never carries torch's family or test-only packages, the install step keeps what the GPU
machine has when pyproject.toml accepts it, the generated E2E rows are what lodabench reads, and the
CPU dry run of the whole check passes (no download, no GPU)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lodabench.paths import REPO_ROOT

_spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up there
_spec.loader.exec_module(gpu_check)

LOCK = (REPO_ROOT / "requirements.lock").read_text()
PYPROJECT = (REPO_ROOT / "pyproject.toml").read_text()

# A lock in uv's format: torch's own needs (sympy) go with it, a shared one (filelock) stays.
MINI_LOCK = """\
datasets==5.2.0 \\
    --hash=sha256:aa
    # via lodabench (pyproject.toml)
filelock==4.3.1 \\
    --hash=sha256:bb
    # via
    #   datasets
    #   torch
nvidia-cublas==13.1.0 \\
    --hash=sha256:cc
    # via torch
pytest==9.2.0 \\
    --hash=sha256:dd
    # via lodabench (pyproject.toml)
sympy==1.14.0 \\
    --hash=sha256:ee
    # via torch
torch==2.13.0 \\
    --hash=sha256:ff
    # via lodabench (pyproject.toml)
"""
MINI_PYPROJECT = """\
[project]
name = "x"
dependencies = ["torch==2.13.0", "datasets>=3"]
[project.optional-dependencies]
dev = ["pytest>=8"]
"""


def plan_names(*args, **kwargs) -> list[str]:
    return [pin.name for pin in gpu_check.wheel_plan(*args, **kwargs)]


def test_plan_follows_via_edges_and_leaves_torch_and_extras():
    assert plan_names(MINI_LOCK, MINI_PYPROJECT) == ["datasets", "filelock"]


@pytest.mark.parametrize("lock", sorted(p.name for p in REPO_ROOT.glob("requirements*.lock")))
def test_plan_of_the_lock_excludes_torch_nvidia_triton_and_test_packages(lock):
    names = plan_names((REPO_ROOT / lock).read_text(), PYPROJECT)
    leaked = [n for n in names if gpu_check.TORCH_FAMILY.match(n) or n in
              {"sympy", "networkx", "jinja2", "pytest", "pytest-xdist", "pyter3", "loralib", "optuna"}]
    assert not leaked
    assert {"hydra-core", "omegaconf", "transformers", "tokenizers", "safetensors", "sacrebleu"} <= set(names)
    # make bench-gpu times PEFT's LoRA (gpu_check.BENCH_EXTRAS): peft and what only it needs are carried.
    assert {"peft", "accelerate", "psutil"} <= set(names)


def test_left_out_packages_take_their_own_needs_along():
    names = plan_names(LOCK, PYPROJECT)
    assert "wandb" not in names and not any(n.startswith("opentelemetry") for n in names)
    with_wandb = plan_names(LOCK, PYPROJECT, also=("wandb",))
    assert "wandb" in with_wandb and "opentelemetry-sdk" in with_wandb


def test_plan_skips_what_the_machine_has_at_an_accepted_version():
    assert "transformers" not in plan_names(LOCK, PYPROJECT, have={"transformers": "5.17.0"})
    assert "transformers" in plan_names(LOCK, PYPROJECT, have={"transformers": "5.45.0"})  # outside <5.40


def test_plan_lines_are_hash_checked_pins():
    for pin in gpu_check.wheel_plan(LOCK, PYPROJECT):
        assert pin.hashes and pin.requirement().startswith(f"{pin.name}=={pin.version} --hash=sha256:")


def test_install_plan_keeps_the_machines_compatible_copies():
    wheels = {n: Path(f"{n}.whl") for n in ("transformers", "hydra-core", "tqdm")}
    specs = gpu_check.runtime_requirements(PYPROJECT)
    assert gpu_check.install_plan(wheels, {"transformers": "5.17.0", "hydra-core": None, "tqdm": "4.67.1"},
                                  specs) == ["hydra-core"]
    assert gpu_check.install_plan(wheels, {"transformers": "5.50.0", "hydra-core": "1.3.8", "tqdm": "4.0"},
                                  specs) == ["tqdm", "transformers"]  # outside <5.40 and >=4.66


def test_read_freeze():
    assert gpu_check.read_freeze("Hydra_Core==1.3.8\n# comment\ntorch @ file:///x\n") == {"hydra-core": "1.3.8"}


def test_generated_e2e_rows_are_read_by_lodabench(tmp_path):
    from lodabench.tasks.e2e import FILES, read_e2e_csv

    root = gpu_check.write_e2e(tmp_path)
    sizes = {split: len(read_e2e_csv(root / "e2e" / name)) for split, name in FILES.items()}
    assert sizes == {"train": 16, "dev": 4, "test": 4}


@pytest.mark.slow
def test_cpu_smoke_passes(tmp_path, gpt2_tokenizer_dir):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py"), "--cpu-smoke",
                           "--out", str(tmp_path), "--wheels", str(tmp_path / "no-wheels"),
                           "--tokenizer", str(gpt2_tokenizer_dir), "--budget-s", "900"],
                          capture_output=True, text=True, timeout=1200)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {c["name"]: c["status"] for c in summary["checks"]}
    assert proc.returncode == 0 and summary["passed"], proc.stdout + proc.stderr[-3000:]
    assert status == {"install": "PASS", "versions": "PASS", "refusal_standin_smi": "PASS",
                      "refusal_real_smi": "SKIP", "train_fp32": "PASS", "train_bf16": "SKIP",
                      "train_fp16": "SKIP", "resume": "PASS"}
    facts = {c["name"]: c["facts"] for c in summary["checks"]}
    assert facts["train_fp32"]["device"] == "cpu" and facts["resume"]["resumed_at_step"] == 1
    assert summary["versions"]["torch"].startswith("2.") and summary["versions"]["lodabench"]["commit"]
