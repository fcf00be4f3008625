"""`make install` picks the lock for the machine (issue #26): scripts/install_plan.py's choice and the
Makefile around it, on stand-ins: a fake `nvidia-smi` on PATH, a fake venv interpreter reporting a
version, and a copy of the Makefile in a directory with no ../shared beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lodabench.paths import REPO_ROOT

PLAN = REPO_ROOT / "scripts" / "install_plan.py"
GPU_LINE = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-000000000000)"


def _bin(tmp_path: Path, gpu: bool | None = None, driver_cuda: str = "13.0") -> Path:
    """A PATH directory: with a fake nvidia-smi listing a GPU (gpu=True), failing (False), or none."""
    path = tmp_path / "bin"
    path.mkdir(exist_ok=True)
    if gpu is not None:
        listing = f'echo "{GPU_LINE}"; exit 0' if gpu else 'echo "NVIDIA-SMI has failed because it couldn\'t ' \
                                                          'communicate with the NVIDIA driver."; exit 9'
        script = path / "nvidia-smi"
        script.write_text(f'#!/bin/sh\nif [ "$1" = "-L" ]; then {listing}; fi\n'
                          f'echo "| NVIDIA-SMI 580.65  Driver Version: 580.65  CUDA Version: {driver_cuda} |"\n')
        script.chmod(0o755)
    return path


def _venv(tmp_path: Path, version: str) -> Path:
    """A venv whose bin/python reports `version`: the plan reads the interpreter .venv will hold."""
    venv = tmp_path / f"venv{version}"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "{version} cpython"\n')
    python.chmod(0o755)
    return venv


def _plan(tmp_path, *args, gpu=None, version="3.11.7", driver_cuda="13.0"):
    env = {**os.environ, "PATH": str(_bin(tmp_path, gpu, driver_cuda))}
    cmd = [sys.executable, str(PLAN), "--venv", str(_venv(tmp_path, version)), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def _lock(out: subprocess.CompletedProcess) -> str:
    return next(line.split()[1] for line in out.stdout.splitlines() if line.strip().startswith("lock:"))


def test_no_nvidia_smi_gets_the_cpu_lock(tmp_path):
    out = _plan(tmp_path)
    assert out.returncode == 0, out.stderr
    assert _lock(out) == "requirements.lock" and "2.13.0+cpu (CPU build)" in out.stdout
    assert "nvidia-smi is not on PATH" in out.stdout and "CPython 3.11.7" in out.stdout


def test_a_visible_gpu_gets_the_cuda_lock(tmp_path):
    out = _plan(tmp_path, gpu=True)
    assert out.returncode == 0, out.stderr
    assert _lock(out) == "requirements-cuda.lock" and GPU_LINE in out.stdout
    assert "CUDA 13.0 build" in out.stdout and "warning" not in out.stdout
    assert _plan(tmp_path, "--print", "lock", gpu=True).stdout.strip() == "requirements-cuda.lock"


def test_nvidia_smi_without_a_working_driver_is_no_gpu(tmp_path):
    out = _plan(tmp_path, gpu=False)
    assert _lock(out) == "requirements.lock" and "lists no GPU (exit 9: NVIDIA-SMI has failed" in out.stdout


def test_torch_cpu_overrides_a_visible_gpu(tmp_path):
    out = _plan(tmp_path, "--torch", "cpu", gpu=True)
    assert _lock(out) == "requirements.lock" and "TORCH=cpu asked for it" in out.stdout


def test_python_312_on_cpu_gets_the_cuda_lock_and_says_why(tmp_path):
    out = _plan(tmp_path, version="3.12.1")
    assert _lock(out) == "requirements-cuda.lock"
    assert "serves CPython 3.11 only" in out.stdout and "runs on CPU" in out.stdout
    assert "TORCH_BACKEND=cpu" in out.stdout and "PYTHON=python3.11" in out.stdout


def test_torch_cpu_on_python_313_is_refused_with_the_fix(tmp_path):
    out = _plan(tmp_path, "--torch", "cpu", version="3.13.0")
    assert out.returncode != 0 and "TORCH=cpu" in out.stderr and "TORCH=cuda" in out.stderr
    assert "TORCH_BACKEND=cpu" in out.stderr


def test_unsupported_python_is_refused_before_any_venv(tmp_path):
    out = _plan(tmp_path, version="3.10.13")
    assert out.returncode != 0
    assert 'requires-python ">=3.11,<3.14"' in out.stderr and "rm -rf" in out.stderr


def test_old_driver_is_told_what_to_do(tmp_path):
    out = _plan(tmp_path, gpu=True, driver_cuda="12.4")
    assert _lock(out) == "requirements-cuda.lock"
    assert "driver supports CUDA 12.4" in out.stdout and "TORCH_BACKEND=cu126" in out.stdout


# ---- the Makefile, copied into a clone-like directory with nothing beside it ----

def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "parent" / "clone"
    (clone / "scripts").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "requirements-cuda.lock",
                 "scripts/install_plan.py"):
        shutil.copy(REPO_ROOT / name, clone / name)
    with open(clone / "Makefile", "a") as makefile:
        makefile.write("\nprint-env:\n\t@env | grep -E '^(LODABENCH_DATA_ROOT|HF_HUB_OFFLINE)=' || true\n")
    return clone


def _make(clone: Path, tmp_path: Path, *args: str, gpu=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LODABENCH_DATA_ROOT", "HF_HUB_OFFLINE", "MAKEFLAGS")}
    env["PATH"] = f"{_bin(tmp_path, gpu)}:/usr/bin:/bin"
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"], cwd=clone,
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_n_install_never_runs_apt_get_and_follows_the_gpu(tmp_path):
    clone = _clone(tmp_path)
    cpu, gpu = _make(clone, tmp_path, "-n", "install"), _make(clone, tmp_path, "-n", "install", gpu=True)
    for out in (cpu, gpu):
        assert out.returncode == 0, out.stderr
        assert "pip install -q --require-hashes --no-deps" in out.stdout and "apt-get" not in out.stdout
    assert "-r requirements.lock" in cpu.stdout and "-r requirements-cuda.lock" in gpu.stdout
    plan = _make(clone, tmp_path, "install-plan", gpu=True)
    assert "lock:   requirements-cuda.lock" in plan.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_reinstalls_when_the_chosen_lock_changes(tmp_path):
    clone = _clone(tmp_path)
    (clone / ".venv").mkdir()
    (clone / ".venv" / ".lock").write_text("requirements.lock\n")
    (clone / ".venv" / ".installed").touch()
    assert "pip install" not in _make(clone, tmp_path, "-n", "install").stdout  # same choice: up to date
    switched = _make(clone, tmp_path, "-n", "install", "TORCH=cuda")
    assert "-r requirements-cuda.lock" in switched.stdout and "--stale requirements-cuda.lock" in switched.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_makefile_forces_no_data_root_and_no_offline_mode(tmp_path):
    clone = _clone(tmp_path)
    assert _make(clone, tmp_path, "print-env").stdout == ""
    (tmp_path / "parent" / "shared" / "data").mkdir(parents=True)  # the dev/CI layout: exported, not offline
    exported = _make(clone, tmp_path, "print-env").stdout.split()
    assert exported == [f"LODABENCH_DATA_ROOT={tmp_path / 'parent' / 'shared' / 'data'}"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_models_runs_the_cli_subcommand(tmp_path):
    out = _make(_clone(tmp_path), tmp_path, "-n", "models", "ARGS=experiment=e2e_loda")
    assert ".venv/bin/python -m lodabench.cli models experiment=e2e_loda" in out.stdout


def test_java_message_names_the_ways_to_get_java_without_root():
    from lodabench.scoring.java import JAVA_FIX

    for way in ("sudo apt-get install default-jre-headless", "conda install -c conda-forge openjdk",
                "module load java", "make install-java"):
        assert way in JAVA_FIX
