"""Which device a run trains on, never guessed in silence.

``trainer.device=auto`` means CUDA when torch can use it. Where an NVIDIA GPU is visible but torch
cannot use it (a CPU build of torch, or a driver older than torch's CUDA runtime), ``auto`` does not
fall back to the CPU as PyTorch's own idiom (``"cuda" if torch.cuda.is_available() else "cpu"``)
would: a GPT-2 M step takes 14-19 s on one core (issue #26), so the run stops before anything
loads, says what it saw and how to fix it, and names ``trainer.device=cpu`` as the explicit opt-out.

"Visible" is asked of the driver (``nvidia-smi -L``), not of the CUDA toolkit: CI machines have
``nvcc`` and no GPU.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import torch

from lodabench.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
_SMI_TIMEOUT_S = 20  # nvidia-smi answers in well under a second; a hung driver must not hang the run
_GPU_LINE = re.compile(r"^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?$")
_CUDA_VERSION = re.compile(r"CUDA Version:\s*([0-9]+(?:\.[0-9]+)*)")


def _nvidia_smi(*args: str) -> str | None:
    """stdout of ``nvidia-smi <args>``, or None where it is absent or fails (no driver loaded)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def visible_nvidia_gpus() -> list[str]:
    """Names of the GPUs the NVIDIA driver lists (``nvidia-smi -L``: ``GPU 0: <name> (UUID: ...)``)."""
    lines = (_nvidia_smi("-L") or "").splitlines()
    return [m.group(1) for m in map(_GPU_LINE.match, (line.strip() for line in lines)) if m]


def driver_cuda_version() -> str | None:
    """The newest CUDA version the driver supports, from ``nvidia-smi``'s header ("CUDA Version: 13.0")."""
    match = _CUDA_VERSION.search(_nvidia_smi() or "")
    return match.group(1) if match else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def runtime_newer_than_driver(runtime: str | None, driver: str | None) -> bool:
    """torch's CUDA runtime (``torch.version.cuda``) needs a driver of at least that CUDA version."""
    return bool(runtime and driver) and _version_tuple(runtime) > _version_tuple(driver)


def unusable_gpu_message(name: str, gpus: list[str], driver_cuda: str | None) -> str:
    """What was seen and what to do, for GPUs torch cannot use."""
    runtime = torch.version.cuda
    seen = (f"trainer.device={name}: nvidia-smi lists {len(gpus)} NVIDIA GPU(s) ({', '.join(gpus)}; driver CUDA "
            f"{driver_cuda or 'unknown'}) but torch {torch.__version__} cannot use them (torch.version.cuda="
            f"{runtime}); training on the CPU instead would take days.")
    if runtime is None:
        fix = "This torch is a CPU build: install the CUDA lock with `make install TORCH=cuda`."
    elif runtime_newer_than_driver(runtime, driver_cuda):
        fix = (f"torch's CUDA runtime {runtime} is newer than the driver's CUDA {driver_cuda}: update the NVIDIA "
               "driver, or install a torch built for an older CUDA (README, 'On your GPU machine').")
    else:
        fix = ("torch has CUDA but finds no usable device: check CUDA_VISIBLE_DEVICES and that `nvidia-smi` "
               "works for this user, or reinstall with `make install TORCH=cuda`.")
    return f"{seen} {fix} To train on the CPU on purpose: trainer.device=cpu."


def check_requested_device(name: str) -> None:
    """Refuse, before anything loads, a device that cannot be honoured or would be a silent CPU fallback."""
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+", name):
        raise ConfigError(f"trainer.device={name!r} is not one of {', '.join(DEVICES)} (or cuda:<index>).")
    if name == "cpu" or torch.cuda.is_available():
        return
    gpus = visible_nvidia_gpus()
    if gpus:  # auto or cuda: a GPU is there and torch cannot use it
        raise ConfigError(unusable_gpu_message(name, gpus, driver_cuda_version()))
    if name != "auto":
        raise ConfigError(f"trainer.device={name} but there is no CUDA device: nvidia-smi lists no NVIDIA GPU "
                          f"(torch {torch.__version__}, torch.version.cuda={torch.version.cuda}). "
                          "Use trainer.device=cpu or auto.")


def pick_device(name: str) -> torch.device:
    """The device ``trainer.device`` names (checked first: see ``check_requested_device``)."""
    check_requested_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# cuBLAS needs a fixed workspace for deterministic GEMMs; it must be set before cuBLAS starts
# (https://docs.nvidia.com/cuda/cublas/#results-reproducibility).
CUBLAS_WORKSPACE = ":4096:8"


def use_deterministic_kernels(on: bool) -> None:
    """``trainer.deterministic``: bit-equal reruns on one GPU model at some speed cost.

    On the CPU our kernels are deterministic already (the README's bit-for-bit claim is measured
    there). On CUDA, atomics-based kernels (some backward passes, cuBLAS split-K) reduce in a varying
    order, so two runs differ in the last bits and drift apart over thousands of steps. This sets
    ``torch.use_deterministic_algorithms(True)`` (an op with no deterministic kernel raises at its first
    call, naming itself, rather than silently breaking the promise), turns off cuDNN autotuning and
    fixes cuBLAS's workspace (``CUBLAS_WORKSPACE_CONFIG``, kept if already set). Off by default: it is
    what PyTorch's reproducibility notes prescribe, not what the papers' reference code did.
    """
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def device_name(device: torch.device) -> str:
    """``"cpu"`` or ``"cuda:<index>"``: the name a run records (a bare ``cuda`` means the current device)."""
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def describe(device: torch.device) -> str:
    """One log line: the device and, on CUDA, the GPU's name."""
    if device.type != "cuda":
        return f"{device_name(device)} (torch {torch.__version__}, {torch.get_num_threads()} thread(s))"
    return f"{device_name(device)} ({torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda})"
