"""The harness's own JSON state files, each with its expected shape, checked on every read.

A state file decides what a launch trusts: ``record.json`` whether a run is complete and which attempt
it is, ``checkpoints/latest.json`` and ``trainer_state.json`` where training resumes, ``metrics.json``
what an epoch scored, ``hyp.partial.jsonl`` which items need no decoding. Valid JSON of the wrong
shape (a list, a step written as a string, an unknown key) must stop the launch with one line naming
the file, the field and the fix, never a raw traceback or a resume at the wrong step. Each file's
shape is a small declarative ``Shape`` below; ``validate`` checks a parsed value against it and
``read_state`` reads + checks. No schema library: the shapes are few and flat.

Also here: ``read_partial_hypotheses`` (the resumable decode's file, one JSON object per line) and
``refuse_nonfinite`` (a checkpoint whose tensors hold NaN/inf is never resumed, decoded or scored).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lodabench.errors import CheckpointError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    """One field: its JSON kind(s), whether it must be present, and what its parts must be."""

    kinds: tuple[str, ...]               # of "int", "number", "str", "bool", "object", "list", "null", "any"
    required: bool = False
    each: Field | None = None            # object: every value; list: every item
    keys: str | None = None              # object: a regex every key must match
    pattern: str | None = None           # str: a regex the whole value must match
    shape: Shape | None = None           # object: its named fields
    choices: tuple[Any, ...] = ()
    minimum: int | None = None


@dataclass(frozen=True)
class Shape:
    """An object's named fields; ``extra``: whether other keys are allowed (a record gains keys over
    versions and must stay readable; a trainer state is rebuilt field by field, so it allows none)."""

    fields: Mapping[str, Field] = field(default_factory=dict)
    extra: bool = True


@dataclass(frozen=True)
class StateFile:
    """A state file: its top-level field, the error class a bad one raises and the fix it names."""

    top: Field
    error: type
    fix: str  # may use {path} and {parent}


def f(*kinds: str, **spec: Any) -> Field:
    """Shorthand: ``f("int", required=True, minimum=0)``."""
    return Field(tuple(kinds), **spec)


STEP_DIR = r"[A-Za-z0-9][A-Za-z0-9._-]*"  # one path component under checkpoints/, never ".." nor a path
EPOCH_KEY = r"[1-9][0-9]*"                 # epochs are counted from 1, written as strings ("1", "2", ...)
STATUSES = ("running", "complete", "failed", "interrupted")

ATTEMPT = Shape({
    "n": f("int", minimum=0), "outcome": f("str", "null"), "start": f("str", "null"),
    "git": f("object", "null"), "packages": f("object", "null"), "machine": f("object", "null"),
    "started_at": f("str", "null"), "ended_at": f("str", "null"), "code_changed": f("list", "null"),
    "superseded_by_force": f("bool"), "moved_to": f("str", "null"), "lock_sha256": f("str", "null"),
})

RECORD_SHAPE = Shape({
    "status": f("str", required=True, choices=STATUSES), "config": f("object", required=True),
    "seed": f("int", "null"), "attempts": f("list", "int", "null", each=f("object", shape=ATTEMPT)),
    "wall_time_s": f("number", "null", minimum=0), "peak_memory": f("object", "null", each=f("number")),
    "metrics": f("object", "null"), "train": f("object", "null"), "checkpoint_used": f("str", "null"),
    "git": f("object", "null"), "packages": f("object", "null"), "machine": f("object", "null"),
    "started_at": f("str", "null"), "error": f("str", "null"), "lock_sha256": f("str", "null"),
})

LOSSES = f("object", keys=EPOCH_KEY, each=f("number", "null"))
TRAINER_STATE_SHAPE = Shape({
    "epoch": f("int", required=True, minimum=0), "batch_in_epoch": f("int", required=True, minimum=0),
    "global_step": f("int", required=True, minimum=0), "finished": f("bool", required=True),
    "dev_loss": LOSSES, "train_loss": LOSSES, "last_loss": f("number", "null"),
    # added with the cost block (issue 27): older checkpoints lack them and load with TrainState's defaults
    "epoch_loss_sum": f("number"), "epoch_loss_count": f("int", minimum=0), "train_tokens": f("int", minimum=0),
}, extra=False)

LATEST_SHAPE = Shape({"dir": f("str", required=True, pattern=STEP_DIR),
                      "global_step": f("int", required=True, minimum=0)}, extra=False)

HYP_LINE_SHAPE = Shape({"i": f("int", required=True, minimum=0), "hyp": f("str", required=True)}, extra=False)

_RESTART = "delete {parent} to restart this run from step 0 (or re-run with force=true)"
STATE_FILES: dict[str, StateFile] = {
    "record": StateFile(f("object", shape=RECORD_SHAPE), DataError,
                        "delete it (the run then starts fresh: its checkpoints and outputs are moved into "
                        "attempts/unrecorded-<n>/) or restore it from a backup"),
    "latest": StateFile(f("object", shape=LATEST_SHAPE), CheckpointError,
                        "delete {path} to resume from no checkpoint (training restarts at step 0), or " + _RESTART),
    "trainer_state": StateFile(f("object", shape=TRAINER_STATE_SHAPE), CheckpointError,
                               "delete {parent} and point checkpoints/latest.json to an earlier checkpoint, or "
                               "delete the run's checkpoints/ to restart from step 0 (or re-run with force=true)"),
    "metrics": StateFile(f("object"), DataError, "delete {path} (that evaluation is then run again)"),
    "hyp_line": StateFile(f("object", shape=HYP_LINE_SHAPE), DataError,
                          "delete {path} (its items are then decoded again)"),
}


class ShapeError(ValueError):
    """Where (``field``) and what is wrong with a parsed state file; ``validate`` adds the file and fix."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


# ----------------------------------------------------------------------------- checking
def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "number", str: "str", dict: "object", list: "list"}.get(type(value), type(value).__name__)


def _kind_ok(value: Any, kinds: tuple[str, ...]) -> bool:
    kind = _kind_of(value)
    return "any" in kinds or kind in kinds or (kind == "int" and "number" in kinds)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return f"{_kind_of(value)} {text[:60]}{'...' if len(text) > 60 else ''}"


def check(value: Any, spec: Field, where: str) -> None:
    """Raise ShapeError at the first part of ``value`` that does not fit ``spec``."""
    if not _kind_ok(value, spec.kinds):
        raise ShapeError(where, f"must be {' or '.join(spec.kinds)}, found {_describe(value)}")
    if spec.choices and value not in spec.choices:
        raise ShapeError(where, f"must be one of {', '.join(map(str, spec.choices))}, found {value!r}")
    if spec.minimum is not None and _kind_of(value) in ("int", "number") and value < spec.minimum:
        raise ShapeError(where, f"must be >= {spec.minimum}, found {value!r}")
    if spec.pattern and isinstance(value, str) and not re.fullmatch(spec.pattern, value):
        raise ShapeError(where, f"{value!r} is not a plain name (pattern {spec.pattern})")
    if isinstance(value, dict):
        _check_object(value, spec, where)
    elif isinstance(value, list) and spec.each is not None:
        for n, item in enumerate(value):
            check(item, spec.each, f"{where}[{n}]")


def _check_object(value: dict[str, Any], spec: Field, where: str) -> None:
    for key, item in value.items():
        if spec.keys and not re.fullmatch(spec.keys, key):
            raise ShapeError(_join(where, key), f"unexpected key (keys must match {spec.keys})")
        if spec.each is not None:
            check(item, spec.each, _join(where, key))
    if spec.shape is not None:
        _check_shape(value, spec.shape, where)


def _check_shape(value: dict[str, Any], shape: Shape, where: str) -> None:
    for name, sub in shape.fields.items():
        if name in value:
            check(value[name], sub, _join(where, name))
        elif sub.required:
            raise ShapeError(_join(where, name), "missing (a required field)")
    unknown = sorted(set(value) - set(shape.fields))
    if unknown and not shape.extra:
        raise ShapeError(_join(where, unknown[0]), f"unknown field (expected only {', '.join(shape.fields)})")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def validate(value: Any, kind: str, path: str | Path, where: str = "") -> Any:
    """``value`` (parsed from ``path``) if it has the shape of a ``kind`` state file; else the file's
    error class naming the file, the field and the fix."""
    spec = STATE_FILES[kind]
    try:
        check(value, spec.top, where)
    except ShapeError as exc:
        field_name = f"field '{exc.where}'" if exc.where else "the top level"
        fix = spec.fix.format(path=path, parent=Path(path).parent)
        raise spec.error(f"{path} has the wrong shape: {field_name} {exc.problem}; {fix}.") from None
    return value


def read_state(path: str | Path, kind: str) -> Any:
    """Read a state file strictly (no bare NaN/Infinity) and validate its shape (``validate``)."""
    from lodabench.io import read_json_file

    spec = STATE_FILES[kind]
    fix = spec.fix.format(path=path, parent=Path(path).parent)
    return validate(read_json_file(path, fix, spec.error), kind, path)


# ----------------------------------------------------------------------------- consistency
def read_latest(ckpt_dir: Path) -> dict[str, Any]:
    """``checkpoints/latest.json``, checked: its ``dir`` is a checkpoint directory that exists."""
    pointer = ckpt_dir / "latest.json"
    info = read_state(pointer, "latest")
    if not (ckpt_dir / info["dir"]).is_dir():
        raise CheckpointError(f"{pointer} names checkpoint directory {info['dir']!r}, which does not exist in "
                              f"{ckpt_dir}; delete {pointer} to restart training at step 0, or "
                              f"{_RESTART.format(parent=ckpt_dir)}.")
    return info


def check_resume_state(state: Mapping[str, Any], path: Path, latest_step: int, schedule: Mapping[str, int]) -> None:
    """A trainer state agrees with latest.json and fits this run's schedule (else training would run
    extra steps or report a wrong count). ``schedule``: total_steps, epochs, batches_per_epoch."""
    limits = {"global_step": schedule["total_steps"], "epoch": schedule["epochs"],
              "batch_in_epoch": schedule["batches_per_epoch"]}
    if state["global_step"] != latest_step:
        _bad_state(path, "global_step", f"is {state['global_step']} but latest.json says {latest_step}")
    for key, limit in limits.items():
        if state[key] > limit:
            _bad_state(path, key, f"is {state[key]}, beyond this run's {limit}")


def _bad_state(path: Path, key: str, problem: str) -> None:
    fix = STATE_FILES["trainer_state"].fix.format(path=path, parent=Path(path).parent)
    raise CheckpointError(f"{path}: field '{key}' {problem}; {fix}.")


# ----------------------------------------------------------------------------- hypotheses
def read_partial_hypotheses(path: Path, count: int) -> dict[int, str]:
    """The hypotheses a crashed decode left (``{item index: text}``), every line checked.

    A last line without its newline is the signature of a crash mid-write: it is dropped (those items
    are decoded again) and cut from the file, so the next append starts on a fresh line. Any complete
    line that is not ``{"i": <index below count>, "hyp": <text>}``, or repeats an index, is damage:
    DataError naming the file, the line and the fix.
    """
    raw = path.read_bytes()
    *lines, tail = raw.split(b"\n")
    if tail:
        _cut_torn_tail(path, len(raw) - len(tail))
    done: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        index, text = _hyp_line(path, number, line, count)
        if index in done:
            _bad_hyp(path, number, f"repeats item {index}")
        done[index] = text
    return done


def _cut_torn_tail(path: Path, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    log.warning("%s: dropped a torn last line (a crash while writing it); those items are decoded again", path)


def _hyp_line(path: Path, number: int, line: bytes, count: int) -> tuple[int, str]:
    try:
        rec = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        _bad_hyp(path, number, f"is not a JSON object ({type(exc).__name__}: {exc})")
    try:
        validate(rec, "hyp_line", path)
    except DataError as exc:
        _bad_hyp(path, number, str(exc).split(": ", 1)[1].split(";")[0])
    if rec["i"] >= count:
        _bad_hyp(path, number, f"names item {rec['i']}, but this evaluation has {count} items")
    return rec["i"], rec["hyp"]


def _no_constant(name: str) -> Any:
    raise ValueError(f"bare {name} is not JSON")


def _bad_hyp(path: Path, number: int, problem: str) -> None:
    fix = STATE_FILES["hyp_line"].fix.format(path=path)
    raise DataError(f"{path}: line {number} {problem}; the file is damaged: {fix}.")


# ----------------------------------------------------------------------------- weights
def nonfinite_tensors(tensors: Mapping[str, Any]) -> dict[str, str]:
    """``{name: "3 of 64 values NaN/inf"}`` for each floating tensor holding a NaN or an infinity."""
    import torch

    out = {}
    for name, tensor in tensors.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor.detach())).sum())
            if bad:
                out[name] = f"{bad} of {tensor.numel()} values NaN/inf"
    return out


def refuse_nonfinite(tensors: Mapping[str, Any], source: str, fix: str) -> None:
    """CheckpointError if any tensor holds NaN/inf: such weights are never resumed, decoded or scored
    (a NaN model decodes empty or garbage text that still gets a score)."""
    bad = nonfinite_tensors(tensors)
    if bad:
        names = "; ".join(f"{k}: {v}" for k, v in sorted(bad.items())[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(f"{source} holds non-finite weights in {len(bad)} tensor(s) ({names}{more}); "
                              f"they are not used. {fix}")


def optimizer_tensors(blob: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizer moments of a checkpoint's ``optimizer.pt`` blob, by ``param<i>.<name>`` (NaN
    moments would turn the first resumed step's weights into NaN)."""
    state = ((blob.get("optimizer") or {}) if isinstance(blob, Mapping) else {}).get("state") or {}
    return {f"param{key}.{name}": value for key, slots in state.items() if isinstance(slots, Mapping)
            for name, value in slots.items()}
