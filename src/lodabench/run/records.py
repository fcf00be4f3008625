"""The run record: everything needed to trust and re-create a number, written beside it.

``record.json`` holds the status (running | complete | failed | interrupted), the resolved config,
seed, trainable parameter counts, wall time, peak memory (``peak_memory``, process-wide; the ``cost``
block, lodabench.train.phase_cost, has seconds, tokens and peak memory per phase), the training log summary, which checkpoint
the reported numbers come from, the metrics, and ``attempts``: one entry per launch that worked on
the run (git commit and dirty flag, the lock installed (name and sha256), package versions, machine, start/end,
outcome, and whether it resumed another attempt's work or started from step 0). Nothing about an
earlier attempt is overwritten: a resume under another commit or lock is an entry of its own that says
so. The top-level ``git``/``lock``/``lock_sha256``/``packages``/``machine`` mirror the latest attempt. Every write
is atomic.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, TypedDict

import torch

from lodabench.errors import ConfigError
from lodabench.io import atomic_write_json
from lodabench.run.lockfile import installed_lock_info
from lodabench.machine import machine_info
from lodabench.paths import REPO_ROOT
from lodabench.config.run_names import LOCAL_COPY_OVERRIDES, is_local_path

PACKAGES = ("lodabench", "torch", "transformers", "datasets", "hydra-core", "omegaconf", "sacrebleu", "nltk",
            "rouge-score", "pycocoevalcap", "pyter3", "pandas", "numpy", "scikit-learn", "scipy", "safetensors",
            "peft", "wandb", "tokenizers", "gguf")

RECORD = "record.json"
ATTEMPTS_DIR = "attempts"  # force=true moves earlier outputs to attempts/<n>/
METRICS = "metrics.json"


# ----------------------------------------------------------------------------- the record's schema
# What record.json holds, key by key: the writer below and the readers (results/: tables, reports,
# claims) share this one description. total=False: a record grows during a run (``status=running``
# first, ``metrics`` at the end) and older records lack keys added since (ADDED_KEYS, attempts).
class Metrics(TypedDict, total=False):
    """metrics.json, and ``record["metrics"]``: the task's scores (``BLEU``, ``accuracy``, ... as its
    scorer names them) plus these keys the spine adds (run.spine.evaluate)."""

    dev_loss: Optional[float]          # the last epoch's dev loss (null: not computed)
    checkpoint: str                    # which weights were scored ("last (step 6)", "best_dev (epoch 2, ...)")
    objective: Optional[float]         # the selection metric's value: what a Hydra sweeper optimises
    objective_split: str               # reported | selection: where the objective was measured
    objective_metric: str              # the selection metric's name
    selection: dict[str, Any]          # selection.epochs runs: the rule, the epochs and the choice (train.selection)


class Attempt(TypedDict, total=False):
    """One launch that worked on the run (``record["attempts"][n - 1]``)."""

    n: int
    git: dict[str, Any]                # {"commit", "dirty"}
    lock: str
    lock_sha256: str
    packages: dict[str, Optional[str]]
    machine: dict[str, Any]
    started_at: str
    ended_at: Optional[str]
    outcome: str                       # running | complete | failed | interrupted | preempted | died ...
    start: str                         # "step 0" | "resume"
    code_changed: Optional[list[str]]
    operational: dict[str, Any]        # this attempt's values of OPERATIONAL_KEYS
    device: str
    inputs: dict[str, Any]             # sha256 fingerprints (run.fingerprints)
    cost: dict[str, Any]               # seconds, tokens, peak memory per phase (train.phase_cost)


class Record(TypedDict, total=False):
    """record.json (RunRecord.data)."""

    status: str                        # running | complete | failed | interrupted
    config: dict[str, Any]             # the resolved config: the run's identity (config_conflicts)
    seed: int
    attempts: list[Attempt]
    git: dict[str, Any]                # these five mirror the latest attempt
    lock: str
    lock_sha256: str
    packages: dict[str, Optional[str]]
    machine: dict[str, Any]
    started_at: str
    last_attempt_at: str
    finished_at: str
    failed_at: str
    interrupted_at: str
    error: str
    last_checkpoint: Optional[str]
    wall_time_s: float
    peak_memory: dict[str, float]
    trainable_params: dict[str, Any]   # methods.count_parameters
    train: dict[str, Any]              # sizes, global_step, train_loss, dev_loss per epoch
    parallel: dict[str, Any]
    checkpoint_used: str
    warm_start: dict[str, Any]
    rng_restored: dict[str, int]
    inputs: dict[str, Any]
    device: str
    cost: dict[str, Any]
    sweep: Optional[dict[str, Any]]
    metrics: Metrics


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
        self.data: Record = _read_record(self.path) if self.path.is_file() else {}  # type: ignore[assignment]
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

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """The attempts list; a record written before attempts were listed becomes one legacy entry."""
        value = self.data.get("attempts")
        if isinstance(value, list):
            return value
        if not self.data:
            return []
        legacy = {k: self.data.get(k) for k in ("git", "packages", "machine")}
        return [{**legacy, "n": 1, "legacy_count": value, "started_at": self.data.get("started_at"),
                 "outcome": self.data.get("status")}]

    def start(self, config: dict[str, Any], seed: int, *, fresh: bool, allow_code_change: bool = False) -> None:
        """Open a new attempt. ``fresh``: it starts from step 0 (first launch or force=true); otherwise
        it resumes earlier work, which is refused under another commit or lock unless allowed."""
        attempts, now = self.attempts, provenance()
        changed = [] if fresh or not attempts else code_changes(attempts[-1], now)
        if changed and not allow_code_change:
            raise ConfigError(
                f"run directory {self.run_dir} holds unfinished work of an attempt made under other code: "
                f"{'; '.join(changed)}. Resuming would mix two versions in one result. Re-run it from step 0 "
                "with force=true, or resume anyway with allow_code_change=true (recorded in the attempt).")
        entry = {"n": len(attempts) + 1, **now, "started_at": _now(), "ended_at": None, "outcome": "running",
                 "start": "step 0" if fresh or not attempts else "resume", "code_changed": changed or None,
                 "operational": operational_values(config)}
        self.update(status="running", config=config, seed=seed, attempts=[*attempts, entry], **now,
                    started_at=self.data.get("started_at") if not fresh else _now(), last_attempt_at=entry["started_at"])

    def note(self, **fields: Any) -> None:
        """Facts of this attempt (``inputs``) set in its entry and mirrored at the top level as the latest."""
        attempts = self.attempts
        if attempts:
            attempts[-1].update(fields)
        self.update(attempts=attempts, **fields)

    def note_device(self, device: torch.device) -> None:
        """The device this attempt runs on (``"cpu"``, ``"cuda:0"``) in the attempt and its ``machine``:
        the machine is described when the attempt opens, before the device is chosen."""
        from lodabench.train.device import device_name

        name = device_name(device)
        gpu = {k: v for k, v in machine_info(name).items() if k in ("device", "gpu", "gpu_memory_gib", "cuda")}
        machine = (self.attempts[-1:] or [self.data])[0].get("machine") or {}
        self.note(device=name, machine={**machine, **gpu})

    def end_attempt(self, outcome: str, **details: Any) -> None:
        attempts = self.attempts
        if attempts:
            attempts[-1].update(outcome=outcome, ended_at=_now(), **details)
        self.data["attempts"] = attempts

    def complete(self, metrics: Metrics) -> None:
        atomic_write_json(self.run_dir / METRICS, metrics)
        self.end_attempt("complete")
        self.update(status="complete", metrics=metrics, finished_at=_now())

    def fail(self, error: str) -> None:
        self.end_attempt("failed", error=error)
        self.update(status="failed", error=error, failed_at=_now())

    def interrupt(self, signal_name: str, last_checkpoint: str | None) -> None:
        self.end_attempt("interrupted", signal=signal_name, last_checkpoint=last_checkpoint)
        self.update(status="interrupted", error=f"interrupted by {signal_name}", interrupted_at=_now(),
                    last_checkpoint=last_checkpoint)

    def supersede(self, moved_to: str) -> None:
        """force=true: the earlier outputs now lie in ``moved_to``; the record keeps only their history."""
        attempts = self.attempts
        if attempts:
            attempts[-1].update(superseded_by_force=True, moved_to=moved_to)
        for key in ("metrics", "checkpoint_used", "train", "error", "finished_at", "failed_at", "interrupted_at",
                    "last_checkpoint", "trainable_params", "peak_memory", "warm_start", "parallel", "inputs",
                    "device", "cost"):
            self.data.pop(key, None)
        self.data["attempts"] = attempts
        self._prior_wall = 0.0


def _read_record(path: Path) -> dict[str, Any]:
    """record.json, its shape checked (lodabench.state_files): a damaged or wrong-shaped record is a
    DataError naming the file and field, never a traceback or a record trusted for what it is not."""
    from lodabench.state_files import read_state

    return read_state(path, "record")


def provenance() -> dict[str, Any]:
    """What produced a number, as of this process: code, lock, packages, machine."""
    lock = installed_lock_info()  # which lock (CPU or CUDA) this environment was installed from
    return {"git": git_info(), "lock": lock["name"], "lock_sha256": lock["sha256"], "packages": package_versions(),
            "machine": machine_info()}


def code_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Differences in commit or lock between an earlier attempt and this process (``["commit a -> b"]``)."""
    out = []
    old_commit, new_commit = (before.get("git") or {}).get("commit"), (now.get("git") or {}).get("commit")
    if old_commit != new_commit:
        out.append(f"git commit {str(old_commit)[:12]} -> {str(new_commit)[:12]}")
    if before.get("lock_sha256") != now.get("lock_sha256") and "lock_sha256" in before:
        names = f"{before.get('lock', 'requirements.lock')} -> {now.get('lock', 'requirements.lock')}"
        out.append(f"lock ({names}) sha256 {str(before.get('lock_sha256'))[:12]} -> {str(now.get('lock_sha256'))[:12]}")
    return out


# What a run's numbers depend on. Everything else (paths, logging, progress bars, threads, device,
# checkpoint cadence, batch sizes of inference) may change between attempts of one run; each attempt
# records its own values of those keys (``operational``). The run directory's name leaves them out too
# (conf/hydra/default.yaml exclude_keys).
RESULT_KEYS = ("model", "method", "data", "trainer", "decoding", "seed", "eval_checkpoint", "init_from", "selection")
OPERATIONAL_KEYS = {"trainer.progress", "trainer.num_threads", "trainer.keep_freed_memory", "trainer.device",
                    "trainer.deterministic", "trainer.num_workers",
                    "trainer.checkpoint_every", "trainer.keep_epoch_checkpoints", "trainer.eval_batch_size",
                    "decoding.progress", "decoding.batch_size"}
# Operational keys that still name the run directory (not in exclude_keys: they did before they were
# counted operational, and leaving them out now would move existing runs). Every other operational
# key is left out of the directory's name and of a table row's label (results/runs.py);
# tests/test_run_identity.py holds conf/hydra/default.yaml to this.
NAMING_OPERATIONAL_KEYS = {"trainer.checkpoint_every", "trainer.keep_epoch_checkpoints"}
# model.pretrained / data.hub_id are identity when they name another hub repository, and operational
# when either side is a local copy (run_names.LOCAL_COPY_OVERRIDES: preflight checks a local copy of
# the weights against the recipe's model; the run directory leaves both out).
LOCAL_COPY_KEYS = set(LOCAL_COPY_OVERRIDES)


def operational_values(config: dict[str, Any]) -> dict[str, Any]:
    """This attempt's values of the keys that may differ between attempts (``{"trainer.device": "cpu"}``)."""
    out = {}
    for key in sorted(OPERATIONAL_KEYS | LOCAL_COPY_KEYS):
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            out[key] = node
    return out


# Result-defining keys added after run records existed, with the value that reproduces what a record
# written before the key existed did. A launch that sets such a key to anything else is a conflict
# with that record (else e.g. model.pooler=mean would silently reuse a CLS-head run).
ADDED_KEYS: dict[str, Any] = {"model.pooler": "cls", "trainer.group_by_length": False, "data.text": "official",
                              "method.projection": "none", "method.projection_hidden": 512,
                              "method.vocab_source": "auto", "method.vocab_top_k": 5000,
                              "selection.epochs": None, "selection.rule": "last", "selection.metric": None,
                              "selection.aggregate": "mean", "model.revision": None,
                              "trainer.compile": False}


def config_conflicts(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Result-defining config values that differ between a run directory's record and this launch.

    A key present on one side only is not a conflict (a newer version may add a key whose default
    keeps the old behaviour), except a key of ``ADDED_KEYS`` now set to another value than the old
    behaviour. Returns ``["trainer.epochs: recorded 1, now 3", ...]``.
    """
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if key in OPERATIONAL_KEYS or (key in LOCAL_COPY_KEYS and a != b and is_local_path(a, b)):
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

    if not recorded:  # no earlier run in this directory
        return out
    for top in RESULT_KEYS:
        if top in current and (top in recorded or isinstance(current[top], dict)):
            # A whole group added later (selection) is compared key by key against ADDED_KEYS.
            walk(recorded.get(top, {}) if isinstance(current[top], dict) else recorded[top], current[top], top)
    return out


def _max_merge(old: dict | None, new: dict) -> dict:
    out = dict(old or {})
    for k, v in new.items():
        out[k] = max(float(out.get(k, 0.0)), float(v))
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
