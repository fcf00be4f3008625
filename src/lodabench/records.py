"""The run record: everything needed to trust and re-create a number, written beside it.

``record.json`` holds the status (running | complete | failed), the resolved config, seed, git
commit (and whether the tree was dirty), package versions, machine, thread count, trainable
parameter counts, wall time, peak memory, the training log summary, which checkpoint the reported
numbers come from, and the metrics. Every write is atomic.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lodabench.io import atomic_write_json, read_json
from lodabench.paths import REPO_ROOT

PACKAGES = ("lodabench", "torch", "transformers", "datasets", "hydra-core", "omegaconf", "sacrebleu", "nltk",
            "rouge-score", "pycocoevalcap", "pyter3", "pandas", "numpy", "scikit-learn", "scipy", "safetensors",
            "peft", "wandb", "tokenizers", "gguf")

RECORD = "record.json"
METRICS = "metrics.json"


def git_info() -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=20, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict[str, Any]:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process (and peak CUDA allocation when on GPU), in MiB."""
    out = {"cpu_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if torch.cuda.is_available():
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


class RunRecord:
    """The record of one run directory; ``update()`` merges fields and rewrites it atomically."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RECORD
        self.data: dict[str, Any] = read_json(self.path) if self.path.is_file() else {}
        self._t0 = time.time()
        self._prior_wall = float(self.data.get("wall_time_s") or 0.0)

    @property
    def status(self) -> str | None:
        return self.data.get("status")

    def is_complete(self) -> bool:
        return self.status == "complete" and (self.run_dir / METRICS).is_file()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        # Wall time accumulates across resumed attempts, so it is the total compute spent.
        self.data["wall_time_s"] = round(self._prior_wall + time.time() - self._t0, 3)
        self.data["peak_memory"] = _max_merge(self.data.get("peak_memory"), peak_memory_mb())
        atomic_write_json(self.path, self.data)

    def start(self, config: dict[str, Any], seed: int) -> None:
        attempts = int(self.data.get("attempts", 0)) + 1
        self.update(status="running", config=config, seed=seed, git=git_info(), packages=package_versions(),
                    machine=machine_info(), attempts=attempts, started_at=self.data.get("started_at") or _now(),
                    last_attempt_at=_now())

    def complete(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir / METRICS, metrics)
        self.update(status="complete", metrics=metrics, finished_at=_now())

    def fail(self, error: str) -> None:
        self.update(status="failed", error=error, failed_at=_now())


# What a run's numbers depend on. Everything else (paths, logging, progress bars, threads, device,
# checkpoint cadence, batch sizes of inference) may change between attempts of one run.
RESULT_KEYS = ("model", "method", "data", "trainer", "decoding", "seed", "eval_checkpoint", "init_from")
OPERATIONAL_KEYS = {"trainer.progress", "trainer.num_threads", "trainer.device", "trainer.num_workers",
                    "trainer.checkpoint_every", "trainer.keep_epoch_checkpoints", "trainer.eval_batch_size",
                    "decoding.progress", "decoding.batch_size"}


# Result-defining keys added after run records existed, with the value that reproduces what a record
# written before the key existed did. A launch that sets such a key to anything else is a conflict
# with that record (else e.g. model.pooler=mean would silently reuse a CLS-head run).
ADDED_KEYS: dict[str, Any] = {"model.pooler": "cls", "trainer.group_by_length": False, "method.projection": "none", "method.projection_hidden": 512, "method.vocab_source": "auto", "method.vocab_top_k": 5000}


def config_conflicts(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Result-defining config values that differ between a run directory's record and this launch.

    A key present on one side only is not a conflict (a newer version may add a key whose default
    keeps the old behaviour), except a key of ``ADDED_KEYS`` now set to another value than the old
    behaviour. Returns ``["trainer.epochs: recorded 1, now 3", ...]``.
    """
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if key in OPERATIONAL_KEYS:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) & set(b)):
                walk(a[k], b[k], f"{key}.{k}" if key else str(k))
            for k in sorted(set(b) - set(a)):
                full = f"{key}.{k}" if key else str(k)
                if full in ADDED_KEYS and b[k] != ADDED_KEYS[full]:
                    out.append(f"{full}: recorded absent (= {ADDED_KEYS[full]!r}, before the key existed), now {b[k]!r}")
        elif a != b:
            out.append(f"{key}: recorded {a!r}, now {b!r}")

    for top in RESULT_KEYS:
        if top in recorded and top in current:
            walk(recorded[top], current[top], top)
    return out


def _max_merge(old: dict | None, new: dict) -> dict:
    out = dict(old or {})
    for k, v in new.items():
        out[k] = max(float(out.get(k, 0.0)), float(v))
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
