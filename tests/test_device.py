"""The device is named, never guessed in silence (issue #26): a visible NVIDIA GPU that torch cannot
use stops ``trainer.device=auto`` before training, with the fix and the explicit opt-out; every run
records its device in its attempt.

"Visible" comes from the driver: a fake ``nvidia-smi`` on PATH stands in for a GPU machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lodabench.train import device as D
from lodabench.errors import ConfigError
from lodabench.run.records import RunRecord
from runs_helpers import run_cli_here, run_dirs

GPU = "NVIDIA H100 80GB HBM3"
SMI = f"""#!/bin/sh
if [ "$1" = "-L" ]; then
  echo "GPU 0: {GPU} (UUID: GPU-00000000-1111-2222-3333-444444444444)"
  echo "GPU 1: {GPU} (UUID: GPU-00000000-1111-2222-3333-555555555555)"
  exit 0
fi
echo "| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: {{cuda}}     |"
"""


def _fake_smi(tmp_path: Path, cuda: str = "13.0", rc: int = 0) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "nvidia-smi"
    failing = f"#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'\nexit {rc}\n"
    script.write_text(failing if rc else SMI.replace("{cuda}", cuda))
    script.chmod(0o755)
    return bin_dir


@pytest.fixture
def gpu_visible(tmp_path, monkeypatch):
    """A fake nvidia-smi first on PATH, and a torch that cannot use CUDA (whatever this machine has)."""
    monkeypatch.setenv("PATH", f"{_fake_smi(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi anywhere
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_the_driver_is_asked(gpu_visible):
    assert D.visible_nvidia_gpus() == [GPU, GPU]
    assert D.driver_cuda_version() == "13.0"


def test_no_driver_means_no_gpu(no_gpu):
    assert D.visible_nvidia_gpus() == [] and D.driver_cuda_version() is None


def test_a_failing_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_smi(tmp_path, rc=9)))
    assert D.visible_nvidia_gpus() == []


def test_auto_with_an_unusable_gpu_is_refused_with_the_fix(gpu_visible, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU build
    with pytest.raises(ConfigError) as exc:
        D.pick_device("auto")
    msg = str(exc.value)
    for part in (GPU, torch.__version__, "torch.version.cuda=None", "make install TORCH=cuda", "trainer.device=cpu",
                 "driver CUDA 13.0"):
        assert part in msg, part


def test_a_runtime_newer_than_the_driver_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_smi(tmp_path, cuda="12.4")))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(ConfigError, match=r"CUDA runtime 13.0 is newer than the driver's CUDA 12.4.*update the NVIDIA driver"):
        D.check_requested_device("auto")
    assert D.runtime_newer_than_driver("13.0", "12.4") and not D.runtime_newer_than_driver("12.8", "13.0")
    assert D.runtime_newer_than_driver("12.10", "12.9")  # compared as numbers, not as text


def test_cpu_is_the_explicit_opt_out(gpu_visible):
    assert D.pick_device("cpu") == torch.device("cpu")


def test_auto_without_a_gpu_is_the_cpu(no_gpu):
    assert D.pick_device("auto") == torch.device("cpu")


def test_cuda_without_a_gpu_is_refused(no_gpu):
    with pytest.raises(ConfigError, match="trainer.device=cuda but there is no CUDA device.*trainer.device=cpu"):
        D.pick_device("cuda")


def test_an_unknown_device_is_refused():
    with pytest.raises(ConfigError, match="trainer.device='gpu' is not one of auto, cpu, cuda"):
        D.check_requested_device("gpu")


def test_the_attempt_records_its_device(tmp_path):
    record = RunRecord(tmp_path)
    record.start({"trainer": {"device": "cpu", "eval_batch_size": 3}}, 110, fresh=True)
    record.note_device(torch.device("cpu"))
    data = json.loads((tmp_path / "record.json").read_text())
    assert data["attempts"][-1]["device"] == "cpu" and data["device"] == "cpu"
    assert data["attempts"][-1]["machine"]["device"] == "cpu" and data["machine"]["device"] == "cpu"
    assert data["attempts"][-1]["operational"] == {"trainer.device": "cpu", "trainer.eval_batch_size": 3}


def test_device_names():
    assert D.device_name(torch.device("cpu")) == "cpu"
    assert D.device_name(torch.device("cuda", 1)) == "cuda:1"


# ----------------------------------------------------------------------------- end to end (CLI)
TINY = ["model=tiny-gpt2", "method=lora", "data.max_train_examples=16", "data.max_eval_items=2", "data.eval_split=dev",
        "trainer.max_steps=2", "trainer.batch_size=8", "trainer.checkpoint_every=0", "trainer.max_dev_batches=1",
        "decoding=greedy", "decoding.max_new_tokens=8", "trainer.progress=false", "decoding.progress=false"]


@pytest.mark.slow
def test_a_gpu_box_with_a_cpu_torch(tmp_path, data_root, gpt2_tokenizer_dir):
    """The issue's bar: refused before training naming trainer.device=cpu; trainer.device=cpu runs and
    records "device": "cpu"; re-running with trainer.device=cpu trainer.eval_batch_size=3 finds it."""
    results = tmp_path / "results"
    env = {"PATH": f"{_fake_smi(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    refused = run_cli_here(TINY, results, env=env, check=False)
    assert refused.returncode == 2 and "trainer.device=cpu" in refused.stderr and GPU in refused.stderr
    assert not list(results.rglob("checkpoints")) and not list(results.rglob("record.json"))  # nothing trained

    done = run_cli_here([*TINY, "trainer.device=cpu"], results, env=env)
    (run_dir,) = run_dirs(results)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete" and record["attempts"][-1]["device"] == "cpu"
    assert "device: cpu" in (run_dir / "entry.log").read_text()
    assert record["inputs"]["weights"] == {"source": "random_init", "config": "tiny-gpt2", "model_type": "gpt2",
                                           "tokenizer": record["inputs"]["weights"]["tokenizer"]}
    assert record["inputs"]["data"] == record["attempts"][-1]["inputs"]["data"]

    again = run_cli_here([*TINY, "trainer.device=cpu", "trainer.eval_batch_size=3"], results, env=env)
    assert f"skip (complete): {run_dir}" in again.stdout and run_dirs(results) == [run_dir], done.stdout[-500:]


def test_deterministic_kernels_are_switched_on_only_when_asked(monkeypatch):
    from lodabench.train.device import CUBLAS_WORKSPACE, use_deterministic_kernels

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    try:
        use_deterministic_kernels(False)
        assert torch.are_deterministic_algorithms_enabled() == before[0]
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        torch.backends.cudnn.benchmark = True
        use_deterministic_kernels(True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a user's own setting is kept
        use_deterministic_kernels(True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
