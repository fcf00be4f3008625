"""examples/hf_trainer_loda.py: LoDA under the Hugging Face Trainer, offline, on a tiny random GPT-2."""

from __future__ import annotations

import importlib.util

from runs_helpers import REPO_ROOT


def test_hf_trainer_example_trains_and_reloads(tmp_path):
    spec = importlib.util.spec_from_file_location("hf_trainer_loda", REPO_ROOT / "examples" / "hf_trainer_loda.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    report = example.main(["--output-dir", str(tmp_path), "--steps", "20"])
    assert report["loss_after"] < report["loss_before"] - 0.05  # Trainer moved the LoDA tensors
    assert report["reloaded_logits_identical"] and report["loss_reloaded"] == report["loss_after"]
    # 2 layers x (q, v) x (A 4x64 + B 64x4 + two 4x4 maps)
    assert report["trainable"] == 2 * 2 * (4 * 64 + 64 * 4 + 2 * 16)
    assert (tmp_path / "adapter" / "lodabench_adapter.safetensors").is_file()
