"""What machine produced a number: the ``machine`` field of run records and benchmark records.

One function for both, so a run record and a bench record of the same machine can be compared
field by field (CPU model, cores, load, threads, versions, GPU).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import platform

import torch

# glibc's mallopt parameters (malloc.h), and the trim threshold keep_freed_memory sets (mallopt takes an int).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_TRIM_OVER = 2**31 - 1  # give back only a free top of the heap over 2 GiB
_malloc = "default"  # what keep_freed_memory last set in this process; machine_info reports it


def keep_freed_memory(enabled: bool) -> str:
    """Keep freed memory in glibc's heap for reuse (``trainer.keep_freed_memory``); returns what was set.

    Why: glibc serves every allocation over 32 MiB with a fresh ``mmap`` and returns it on ``free``, so
    each training step's large tensors (GPT-2's 50,257-wide logits: ~84 MB for a batch of 8) fault in
    new zeroed pages -- measured 6.7 M page faults and 12 s of system time in a 32-step tiny run, whose
    training took 19 s with glibc's defaults and 8 s with ``M_MMAP_MAX=0`` (served from the heap) and
    a 2 GiB trim threshold (scripts/bench_keep_freed.py, docs/benchmarks.md). Allocation never changes
    a computed number. The cost: the process keeps its peak memory until it exits (phase_cost trims
    before each phase's peak is reset). A no-op where the C library is not glibc.
    """
    global _malloc
    if not enabled:
        return _malloc
    libc = _glibc()
    if libc is None:
        _malloc = "default (not glibc)"
        return _malloc
    if libc.mallopt(_M_MMAP_MAX, 0) != 1 or libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_OVER) != 1:
        _malloc = "default (mallopt refused)"
        return _malloc
    _malloc = "glibc keep-freed (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)"
    return _malloc


def settle_import_heap() -> None:
    """End the collector pause of ``python -m lodabench`` (lodabench/__main__.py) once the modules a job
    runs are imported (entry.main, before Hydra launches any job): the objects made so far (413k in a
    tiny E2E launch, nearly all the imports') move to the permanent generation, which later collections
    do not scan. A process that did not pause (the library API, the tests) is left as it is.

    Measured (scripts/bench_import_gc.py, results/bench/20261207-115934-cpu-import-gc.md): a tiny RTE
    run's process CPU 7.14 -> 6.06 s (medians of 5 pairs), every run's metrics equal: the collector frees
    only unreachable cycles, and the frozen objects live as long as the process anyway. The import-time
    garbage it keeps (compose's cycles) costs ~10 MB of peak RSS (568 vs 558 MB), once per process.
    """
    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()


def release_freed_memory() -> None:
    """Give the heap's free memory back to the OS (glibc ``malloc_trim(0)``), so a phase's peak resident
    set (lodabench.train.phase_cost) counts what the phase uses, not what an earlier phase freed and
    ``keep_freed_memory`` kept. A no-op elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a GNU system
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - glibc without a loadable libc.so
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


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

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": _installed("peft")}


def _installed(dist: str) -> str | None:
    """``dist``'s installed version from its metadata: importing peft only to read its version costs
    ~1-2 s (it imports dozens of transformers models) in a process that does not use it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover - a declared dependency
        return None


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
        **_library_versions(), "torch_num_threads": torch.get_num_threads(), "malloc": _malloc,
        "device": None if device is None else str(device), "mem_total_gib": _mem_total_gib(), **_gpu(device),
    }
