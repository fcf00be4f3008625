"""Atomic file writes: a crash while writing never leaves a half-written file in place.

Every writer goes to a temporary file in the same directory, fsyncs it and renames it over the
target (``os.replace`` is atomic on POSIX), so readers see either the old complete file or the new
complete file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


def _proc_umask() -> int | None:
    """The umask from /proc/self/status ("Umask:", Linux >= 4.7): read without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Where /proc cannot tell, the umask is read once here, at import (setting and restoring it is racy
# against threads that create files, which do not exist yet while this module is imported).
_IMPORT_UMASK = None if _proc_umask() is not None else _umask_by_setting()


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file now: 0666 & ~umask."""
    mask = _proc_umask()
    return 0o666 & ~(mask if mask is not None else (_IMPORT_UMASK or 0))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed onto ``path``, on error it is removed.

    mkstemp makes the temporary file 0600; before the rename it gets the mode the umask gives a new
    file (0644 under umask 022), so a shared results tree stays readable to the group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON: a NaN/inf is written as null (bare NaN is not JSON, strict readers refuse it)."""
    found: list[str] = []
    text = json.dumps(finite_json(obj, found=found), indent=2, sort_keys=False, ensure_ascii=False, default=str,
                      allow_nan=False)
    if found:
        logging.getLogger(__name__).warning("%s: %d non-finite value(s) written as null: %s", path, len(found),
                                            ", ".join(found[:5]))
    atomic_write_text(path, text + "\n")


def finite_json(obj: Any, where: str = "", found: list[str] | None = None) -> Any:
    """``obj`` with every non-finite float replaced by None; ``found`` collects their field paths."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        if found is not None:
            found.append(where or "(top level)")
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v, f"{where}.{k}" if where else str(k), found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v, f"{where}[{n}]", found) for n, v in enumerate(obj)]
    return obj


def write_csv(path: str | os.PathLike, rows: Any, columns: Iterable[str] | None = None, *,
              float_format: str | None = None, line_end: str = "\n") -> Path:
    """Atomically write ``rows`` as CSV: the package's one CSV writer.

    ``rows``: dicts (a missing column is written empty, a key outside ``columns`` is left out),
    or a pandas DataFrame, written as ``DataFrame.to_csv(index=False)`` writes it (the tables
    and reports keep their bytes). ``columns`` default to the first row's keys.
    ``float_format``: e.g. ``".6g"`` (analysis CSVs: 6 significant digits); None writes Python's
    ``repr``. ``line_end``: ``"\n"``; scripts/report_real.py passes ``"\r\n"``, the csv module's
    default its committed files were written with.
    """
    if hasattr(rows, "to_csv"):
        atomic_write_text(path, rows.to_csv(index=False))
        return Path(path)
    rows = list(rows)
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator=line_end)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v, float_format) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def _csv_cell(value: Any, float_format: str | None) -> Any:
    return format(value, float_format) if float_format is not None and isinstance(value, float) else value


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Atomically create ``path`` with ``writer(tmp_path)`` (e.g. safetensors' save_file)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def read_json(path: str | os.PathLike) -> Any:
    """Strict JSON: a bare NaN/Infinity (which no JSON parser but Python's accepts) is a ValueError."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"bare {name} is not JSON (strict JSON has no NaN/Infinity)")


def read_json_file(path: str | os.PathLike, fix: str, error: type | None = None) -> Any:
    """``read_json`` for the harness's own state files: a damaged one (truncated, not UTF-8, not JSON)
    raises ``error`` (default DataError) naming the file, what is wrong and ``fix``, never a raw
    JSONDecodeError."""
    from lodabench.errors import DataError

    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or a bare NaN (_reject_constant)
        raise (error or DataError)(f"{path} is damaged ({type(exc).__name__}: {exc}); {fix}.") from exc


def safe_rmtree(path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Delete the directory tree ``path`` only if it lies strictly inside ``root``.

    The harness deletes superseded checkpoints; a path built from a config value (a run name, a
    ``..`` in an override, a symlink) must never make it delete anything outside the results
    directory. Both paths are resolved (symlinks followed) before the check; ``root`` itself is
    refused too. Raises ``ValueError`` (a programming error, not a user input error) otherwise.
    """
    import shutil

    target, base = Path(path).resolve(), Path(root).resolve()
    if target == base or base not in target.parents:
        raise ValueError(f"refusing to delete {target}: it is not inside {base}")
    shutil.rmtree(target)


def check_writable_dir(path: str | os.PathLike, key: str = "paths.results_dir") -> None:
    """Create ``path`` if needed and write/delete a probe file; ConfigError naming ``key`` otherwise."""
    from lodabench.errors import ConfigError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"results directory {path} is not writable ({exc.strerror or exc}: "
                          f"{exc.filename or path}). Fix its permissions or set {key}=<writable dir> "
                          "(or LODABENCH_RESULTS_DIR).") from exc
