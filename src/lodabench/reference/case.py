"""Reading a golden case folder (format of ../shared/golden/lora_nlg/): every file validated on read.

A malformed folder raises ``CaseFormatError`` naming the file and what is wrong with it; the CLI
turns that into exit status 2, distinct from a numeric mismatch (exit 1).

Which kind of case a folder is follows from its files, as the case READMEs describe them:

* ``forward``: ``batch.json`` + ``expected_loss.json`` + ``expected_logits_summary.safetensors`` +
  ``expected_lora_grads.safetensors``, and optionally ``optimizer_run.json`` +
  ``expected_lora_params_after_steps.safetensors`` (the optimizer steps);
* ``beam``: ``expected_beam.json`` (its ``settings`` object) + ``decode_input_lines.json`` +
  ``expected_pred.txt`` + ``expected_ref.txt``.

Both need ``weights.safetensors`` (HF GPT-2 names, BF16, lm_head tied; README one folder up).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lodabench.errors import LodabenchError

FORWARD_FILES = ("batch.json", "expected_loss.json", "expected_logits_summary.safetensors",
                 "expected_lora_grads.safetensors")
OPTIMIZER_FILES = ("optimizer_run.json", "expected_lora_params_after_steps.safetensors")
BEAM_FILES = ("expected_beam.json", "decode_input_lines.json", "expected_pred.txt", "expected_ref.txt")


class CaseFormatError(LodabenchError):
    """A case folder lacks a file or a file is not in the documented format."""


def case_kind(case_dir: Path) -> str:
    """``forward`` or ``beam`` (module docstring); CaseFormatError when neither fits."""
    if not case_dir.is_dir():
        raise CaseFormatError(f"{case_dir}: not a directory (expected a golden case folder such as "
                              "../shared/golden/lora_nlg/fwd_opt_seed1)")
    require(case_dir / "weights.safetensors")
    if (case_dir / "expected_beam.json").is_file():
        for name in BEAM_FILES:
            require(case_dir / name)
        return "beam"
    if (case_dir / "batch.json").is_file():
        for name in FORWARD_FILES:
            require(case_dir / name)
        if any((case_dir / n).exists() for n in OPTIMIZER_FILES):
            for name in OPTIMIZER_FILES:
                require(case_dir / name)
        return "forward"
    raise CaseFormatError(f"{case_dir}: neither expected_beam.json (a beam case) nor batch.json (a forward/optimizer "
                          "case) is there; see ../shared/golden/lora_nlg/README.md for the layout.")


def require(path: Path) -> Path:
    if not path.is_file():
        raise CaseFormatError(f"{path}: missing (every case of this kind has it; see the case README.md)")
    return path


def read_case_json(path: Path) -> Any:
    try:
        return json.loads(require(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaseFormatError(f"{path}: not valid UTF-8 JSON ({exc})") from exc


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(require(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CaseFormatError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_lines(path: Path) -> list[str]:
    try:
        return require(path).read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise CaseFormatError(f"{path}: not UTF-8 ({exc})") from exc


def field(obj: Any, key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    """``obj[key]``, which must be of ``kind`` (CaseFormatError naming the file and key)."""
    if not isinstance(obj, dict) or key not in obj:
        raise CaseFormatError(f"{path}: key {key!r} missing")
    value, kinds = obj[key], _as_tuple(kind)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise CaseFormatError(f"{path}: {key!r} is {type(value).__name__}, expected {_names(kind)}")
    return value


def tensor(tensors: dict[str, torch.Tensor], key: str, path: Path) -> torch.Tensor:
    if key not in tensors:
        raise CaseFormatError(f"{path}: tensor {key!r} missing (has {', '.join(sorted(tensors)[:6])} ...)")
    return tensors[key]


def int_rows(obj: Any, key: str, path: Path) -> list[list[int]]:
    """``obj[key]`` as a list of lists of ints (token ids, masks)."""
    rows = field(obj, key, list, path)
    if not all(isinstance(r, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in r) for r in rows):
        raise CaseFormatError(f"{path}: {key!r} must be a list of lists of integers")
    return rows


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))
