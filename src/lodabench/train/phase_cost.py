"""What a run cost: seconds, tokens trained, peak memory per phase, size of the saved adapter.

Every record gets a top-level ``cost`` block (issue 27), the numbers PEFT's method-comparison
records show users, so a method is judged on its price as well as its score:

* ``train_s``: seconds in the train phase, summed over the run's attempts (a resumed run's cost is
  everything it spent, like ``wall_time_s``); ``eval_s``: the same for evaluation (decode + score).
* ``train_tokens``: non-padding tokens (``attention_mask`` sum: every token the forward and
  backward passes read, source included, not only the loss targets) of the optimizer steps the
  final weights were trained with. The count lives in the trainer state, which every checkpoint
  holds, so a resumed run counts each step once and matches an uninterrupted run.
* ``train_tokens_per_s``: tokens processed / train seconds over the attempts that recorded both
  (steps redone after a crash count as processed: this is the machine's throughput).
* ``peak_memory_mb``: ``{"train": ..., "decode": ...}``, the largest of the attempts. On CUDA the
  peak allocated by torch, reset at each phase start (``reset_peak_memory_stats``); on the CPU the
  process's peak resident set, reset at each phase start where the OS allows it (Linux:
  ``/proc/self/clear_refs`` resets ``VmHWM``, after glibc's ``malloc_trim`` has returned the memory
  earlier phases freed, which ``trainer.keep_freed_memory`` would otherwise keep resident), else
  ``ru_maxrss``, the peak since the process started. ``memory_measure`` says which one was used.
* ``adapter_bytes``: size of the saved trainable state (the last checkpoint's
  ``trainable.safetensors``).

Each attempt entry holds its own ``cost`` (its seconds, ``tokens_processed``, its peaks); an
attempt killed without a chance to write (kill -9) has none, and a ``force=true`` re-run leaves
out the attempts it superseded. Measuring lives here; ``lodabench.run.spine`` opens one ``phase`` per
phase.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from lodabench.machine import release_freed_memory

PHASES = ("train", "decode")
PHASE_SECONDS = {"train": "train_s", "decode": "eval_s"}
CUDA_MEASURE = "torch.cuda.max_memory_allocated, reset per phase (reset_peak_memory_stats)"
VMHWM_MEASURE = "VmHWM reset per phase (Linux clear_refs): peak resident set of this process during the phase"
MAXRSS_MEASURE = ("ru_maxrss: peak resident set of this process since it started (the OS cannot reset it "
                  "here), so a phase's value is the peak up to that phase's end")
CLEAR_REFS = Path("/proc/self/clear_refs")
PROC_STATUS = Path("/proc/self/status")
COLUMNS = ("train_s", "eval_s", "train_tokens", "train_tokens_per_s", "peak_train_mb", "peak_decode_mb",
           "adapter_bytes")


# ----------------------------------------------------------------------------- tokens
def batch_tokens(batch: dict[str, Any]) -> int:
    """Non-padding tokens of a collated batch: what the model reads, so the throughput is comparable
    between tasks whose loss covers different shares of the sequence (targets only vs the label)."""
    mask = batch.get("attention_mask")
    if torch.is_tensor(mask):
        return int(mask.sum())
    ids = batch.get("input_ids")
    return int(ids.numel()) if torch.is_tensor(ids) else 0  # no mask: collators that never pad


# ----------------------------------------------------------------------------- memory
def reset_peak(device: torch.device) -> str:
    """Start a phase's peak at the memory in use now; returns what the phase's peak will mean."""
    release_freed_memory()  # what earlier phases freed is not this phase's (trainer.keep_freed_memory)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return CUDA_MEASURE
    return VMHWM_MEASURE if _clear_hwm() else MAXRSS_MEASURE


def _clear_hwm() -> bool:
    """Linux >= 4.0: writing 5 to clear_refs sets VmHWM to the current RSS (False where refused)."""
    try:
        with open(CLEAR_REFS, "w") as fh:
            fh.write("5")
        return _vmhwm_kb() is not None
    except OSError:
        return False


def _vmhwm_kb() -> int | None:
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_peak_mb(device: torch.device, measure: str) -> float | None:
    """The phase's peak in MiB, by the measure ``reset_peak`` chose."""
    if measure == CUDA_MEASURE:
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    kb = _vmhwm_kb() if measure == VMHWM_MEASURE else None
    if kb is None:  # ru_maxrss is in KiB on Linux
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024.0, 1)


class PhaseMeter:
    """Seconds and peak memory of one phase: ``start()`` at its beginning, ``stop()`` at its end."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.measure: str | None = None
        self._t0 = 0.0

    def start(self) -> PhaseMeter:
        self.measure = reset_peak(self.device)
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> dict[str, Any]:
        seconds = round(time.perf_counter() - self._t0, 3)
        return {"seconds": seconds, "peak_mb": read_peak_mb(self.device, self.measure), "measure": self.measure}


# ----------------------------------------------------------------------------- the record
@contextlib.contextmanager
def phase(record, name: str, device: torch.device | str,
          extra: Callable[[], dict[str, Any]] | None = None) -> Iterator[PhaseMeter]:
    """Measure the phase ``name`` and note it in ``record`` when it ends, also when it ends by an
    exception (an interrupted attempt's seconds count too); ``extra()`` adds attempt values."""
    meter = PhaseMeter(device).start()
    try:
        yield meter
    except BaseException:
        with contextlib.suppress(OSError):  # never hide the real failure behind a failed write
            note_phase(record, name, meter.stop(), extra() if extra else {})
        raise
    note_phase(record, name, meter.stop(), extra() if extra else {})


def note_phase(record, name: str, measured: dict[str, Any], extra: dict[str, Any]) -> None:
    """Put the phase into this attempt's ``cost`` and recompute the run's ``cost`` block."""
    attempts = getattr(record, "attempts", None)
    if not attempts:  # ranks other than 0 keep no record
        return
    mine = attempts[-1].setdefault("cost", {})
    mine[PHASE_SECONDS[name]] = measured["seconds"]
    mine.setdefault("peak_memory_mb", {})[name] = measured["peak_mb"]
    mine["memory_measure"] = measured["measure"]
    mine.update(extra)  # tokens_processed
    note_run_cost(record)


def note_run_cost(record, **run_level: Any) -> None:
    """Rewrite the top-level ``cost``: run-level facts (``train_tokens``, ``adapter_bytes``) kept or
    given, the rest totalled over the attempts."""
    attempts = getattr(record, "attempts", None)
    if attempts is None:
        return
    cost = {**empty_cost(), **(record.data.get("cost") or {}), **run_level}
    cost.update(totals([a for a in attempts if not a.get("superseded_by_force")]))
    record.update(attempts=attempts, cost=cost)


def empty_cost() -> dict[str, Any]:
    """Every key of the block, so a reader finds them all (None: not measured)."""
    return {"train_s": None, "eval_s": None, "train_tokens": None, "train_tokens_per_s": None,
            "peak_memory_mb": {p: None for p in PHASES}, "memory_measure": None, "adapter_bytes": None}


def totals(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds summed, throughput over the attempts that measured it, peaks maxed, latest measure."""
    costs = [a["cost"] for a in attempts if isinstance(a.get("cost"), dict)]
    out: dict[str, Any] = {key: _sum(c.get(key) for c in costs) for key in ("train_s", "eval_s")}
    timed = [c for c in costs if c.get("train_s") and c.get("tokens_processed") is not None]
    seconds = sum(c["train_s"] for c in timed)
    out["train_tokens_per_s"] = round(sum(c["tokens_processed"] for c in timed) / seconds, 1) if seconds else None
    out["peak_memory_mb"] = {p: _max(((c.get("peak_memory_mb") or {}).get(p) for c in costs)) for p in PHASES}
    measures = [c["memory_measure"] for c in costs if c.get("memory_measure")]
    out["memory_measure"] = measures[-1] if measures else None
    return out


def _sum(values) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present), 3) if present else None


def _max(values) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def adapter_bytes(ckpt_dir: str | os.PathLike) -> int | None:
    """Bytes of the trainable state the run saved: the latest checkpoint's safetensors file."""
    from lodabench.io import read_json

    ckpt_dir = Path(ckpt_dir)
    try:
        latest = read_json(ckpt_dir / "latest.json")
        return (ckpt_dir / str(latest["dir"]) / "trainable.safetensors").stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- tables
def cost_columns(record: dict[str, Any] | None) -> dict[str, Any]:
    """A record's cost as flat ``cost_<name>`` table columns; "" where the record has none (runs
    made before the cost block, or a phase that never ran)."""
    cost = (record or {}).get("cost")
    cost = cost if isinstance(cost, dict) else {}
    peaks = cost.get("peak_memory_mb") if isinstance(cost.get("peak_memory_mb"), dict) else {}
    flat = {**cost, "peak_train_mb": peaks.get("train"), "peak_decode_mb": peaks.get("decode")}
    return {f"cost_{key}": (flat[key] if _is_number(flat.get(key)) else "") for key in COLUMNS}


def _is_number(value: Any) -> bool:
    """A hand-edited or damaged record's odd value shows blank rather than break a table."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
