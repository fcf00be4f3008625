"""What machine produced a number: the ``machine`` field of run records and benchmark records.

One function for both, so a run record and a bench record of the same machine can be compared
field by field (CPU model, cores, load, threads, versions, GPU).
"""

from __future__ import annotations

import os
import platform

import torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            return round(int(fh.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None


def _library_versions() -> dict[str, str | None]:
    import transformers

    try:
        import peft

        peft_version: str | None = peft.__version__
    except ImportError:  # pragma: no cover - a declared dependency
        peft_version = None
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft_version}


def _gpu(device: torch.device | str | None) -> dict[str, object]:
    """GPU name and memory of ``device`` (default: CUDA device 0 when CUDA is available)."""
    cuda = torch.version.cuda if torch.cuda.is_available() else None
    if device is None and cuda is not None:
        device = "cuda"
    if device is None or torch.device(device).type != "cuda":
        return {"cuda": cuda}
    props = torch.cuda.get_device_properties(torch.device(device))
    return {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}


def machine_info(device: torch.device | str | None = None) -> dict[str, object]:
    """What a reader needs to compare two records: CPU, cores, load, threads, versions, GPU.

    ``device``: the device the numbers were measured on (bench records name it); None (run
    records) describes CUDA device 0 when one is available. ``cuda`` is the CUDA version torch
    was built with when CUDA is usable, else None.
    """
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "load_average_at_start": load,
        **_library_versions(), "torch_num_threads": torch.get_num_threads(),
        "device": None if device is None else str(device), "mem_total_gib": _mem_total_gib(), **_gpu(device),
    }
