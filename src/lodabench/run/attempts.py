"""A launch's attempts in its run directory: what an accepted launch tidies first (orphan temporary
files, a dead launch's record), sets aside (work no record vouches for; force=true's earlier outputs,
into ``attempts/``, nothing deleted), and how an attempt's end is recorded even on a full disk.

Called by the spine (``run/spine._launch``) with the run's lock held, on rank 0 only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from lodabench.errors import LodabenchError
from lodabench.run.records import ATTEMPTS_DIR, METRICS, RECORD, RunRecord
from lodabench.run.runlock import LOCK_NAME
from lodabench.train.preemption import RunInterrupted, RunPreempted, describe_requeue

log = logging.getLogger(__name__)

# What force=true leaves in place: the record (it lists every attempt), this launch's lock and
# Hydra capture, the archive itself, wandb's offline runs, and Hydra's open job log.
FORCE_KEEPS = {RECORD, LOCK_NAME, ".hydra", ATTEMPTS_DIR, "wandb"}
UNRECORDED = ".unrecorded-failure"
WORK_PRODUCTS = ("checkpoints/latest.json", "hyp.partial.jsonl", "hyp.txt", "predictions.jsonl")


def has_work(run_dir: Path) -> bool:
    """Whether an earlier attempt left work a launch would reuse (checkpoints, decoded outputs)."""
    return any((run_dir / name).exists() for name in WORK_PRODUCTS)


def move_attempt_aside(run_dir: Path, n: int, dest_name: str | None = None) -> str:
    """force=true: move the earlier attempt's outputs into ``attempts/<n>/`` (nothing is deleted);
    work no record vouches for goes to ``attempts/<dest_name>/`` (set_aside_unrecorded)."""
    dest = run_dir / ATTEMPTS_DIR / (dest_name or str(n))
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(run_dir.iterdir()):
        if entry.name not in FORCE_KEEPS and entry.suffix != ".log" and not (entry / RECORD).is_file():
            entry.rename(dest / entry.name)  # within run_dir; another run's directory is never moved
    log.info("force=true: earlier outputs of %s moved to %s", run_dir, dest)
    return str(dest.relative_to(run_dir))


# Work a launch would reuse (resume, skip decoding, re-score) and so must be vouched for by a record.
UNVOUCHED_WORK = (*WORK_PRODUCTS, "checkpoints", "epochs", METRICS)


def set_aside_unrecorded(run_dir: Path, record: RunRecord) -> str | None:
    """Checkpoints, hypotheses or scores with no record attempt that vouches for them (record.json
    deleted or never written) are moved into ``attempts/unrecorded-<n>/`` (nothing deleted), so this
    launch starts from step 0 instead of resuming them under a record that says "attempt 1, step 0"."""
    if record.attempts or not any((run_dir / name).exists() for name in UNVOUCHED_WORK):
        return None
    n = 1
    while (run_dir / ATTEMPTS_DIR / f"unrecorded-{n}").exists():
        n += 1
    moved = move_attempt_aside(run_dir, n, dest_name=f"unrecorded-{n}")
    print(f"[lodabench] {run_dir} held checkpoints or outputs that no {RECORD} vouches for; moved them to "
          f"{moved}/ (nothing deleted). This attempt starts from step 0.", file=sys.stderr)
    return moved


def note_set_aside(record: RunRecord, moved_to: str | None) -> None:
    """The attempt says where the unrecorded work it did not trust now lies."""
    attempts = record.attempts
    if moved_to and attempts:
        attempts[-1]["set_aside_unrecorded"] = moved_to
        record.update(attempts=attempts)


def attempt_hygiene(run_dir: Path) -> None:
    """With the lock held: remove orphan temporary files, and close what a dead launch left open."""
    from lodabench.config.run_names import orphan_temp_files
    for tmp in orphan_temp_files(run_dir):  # only io.atomic_path's own temporary names
        tmp.unlink(missing_ok=True)
        log.info("removed orphan temporary file %s (a launch died while writing it)", tmp)
    if not (run_dir / RECORD).is_file():
        return
    record = RunRecord(run_dir)
    marker = run_dir / UNRECORDED
    if marker.exists():
        note = marker.read_text(errors="replace").strip() or "no details could be written"
        print(f"[lodabench] the previous attempt of {run_dir} failed and its failure could not be recorded "
              f"then ({note}); recorded now.", file=sys.stderr)
        record.end_attempt("failed (recorded late)", error=note)
        record.update(status="failed", error=f"failed, unrecorded at the time: {note}")
        marker.unlink()
    elif record.status == "running":  # we hold the lock, so the launch that wrote this is gone
        record.end_attempt("died", error="the launch ended without a record (kill -9, power loss, OOM kill)")
        record.update(status="interrupted", error="the previous launch died without recording its end")


def record_end(record: RunRecord, run_dir: Path, exc: BaseException) -> None:
    """Record how the attempt ended; if even that write fails (disk full), leave a marker file."""
    try:
        if isinstance(exc, RunPreempted):
            record_preempted(record, run_dir, exc)
        elif isinstance(exc, RunInterrupted):
            record.interrupt(exc.signal_name, last_checkpoint(run_dir))
        else:
            record.fail(f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, LodabenchError):
                (run_dir / "error.txt").write_text(traceback.format_exc())
    except OSError as write_error:
        leave_marker(run_dir / UNRECORDED, f"{type(exc).__name__}: {exc}; recording it failed: {write_error}")


def record_preempted(record: RunRecord, run_dir: Path, exc: RunPreempted) -> None:
    """Status interrupted (the run is unfinished, as for any signal); the attempt says preempted,
    at which step's checkpoint, and what requeues it (lodabench.train.preemption)."""
    checkpoint = last_checkpoint(run_dir)
    record.interrupt(exc.signal_name, checkpoint)
    record.end_attempt("preempted", signal=exc.signal_name, last_checkpoint=checkpoint,
                       at_step_boundary=exc.step is not None, requeue=describe_requeue())
    record.update(error=f"preempted by {exc.signal_name}; resumes from checkpoint {checkpoint}")


def leave_marker(path: Path, note: str) -> None:
    # An empty file needs an inode, not a data block: it can be created on a full disk.
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.write(fd, note[:2000].encode())
    os.close(fd)


def last_checkpoint(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "checkpoints" / "latest.json").read_text()).get("dir")
    except (OSError, ValueError, AttributeError):
        return None
