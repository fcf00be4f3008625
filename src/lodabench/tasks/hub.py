"""Where a task's splits come from, and the record of what was read (``task.inputs``).

A task reads either

* a **data root** (``paths.data_root``, ``$LODABENCH_DATA_ROOT`` or ``../shared/data``): the
  official files (``e2e/*.csv``, ``dart/*.json``, ``glue/<TASK>/*.tsv``); or, with none,
* the **hub**: the parquet files of ``data.hub_id`` at ``data.hub_revision``.

Why parquet, not ``datasets.load_dataset(<id>)``: ``tuetschek/e2e_nlg`` and ``Yale-LILY/dart`` hold
only loading scripts, which ``datasets`` >= 4 refuses. The hub's parquet export of such a repository
(revision ``refs/convert/parquet``, layout ``default/{train,validation,test}/0000.parquet``) holds
the rows those scripts produce; lm-evaluation-harness moved to it for the same reason.
``nyu-mll/glue`` is a parquet repository itself (``<task>/train-00000-of-00001.parquet``).

Layout (``split_patterns``): a split's files are ``<config>/<split>/*.parquet`` (the parquet
export) or else ``<config>/<split>-*.parquet`` (a parquet repository's own files), in name order;
``<config>`` is ``default`` for E2E and DART and the task (``sst2``) for GLUE. Both are accepted
from the hub and from a local directory, so a mirror of either revision of ``nyu-mll/glue`` works.

Rows go straight from parquet into each task's row mapping (``e2e.to_pairs``, ``dart.to_pairs``,
GLUE ``Row``), the same functions the official files feed, rather than being written back as
CSV/JSON first: the hub rows are the official rows (E2E: 42,061 / 4,672 / 4,693, in file order),
so E2E's ``data.text=lora`` is made from them by ``e2e_lora_text`` exactly as from the CSV, and
there is no second copy of the data on disk to keep in step.

Download (``hub_id`` a repository): ``huggingface_hub.snapshot_download`` of only the split's files
into ``<cache_root>/hub`` (``lodabench.paths.cache_root``: ``$LODABENCH_CACHE``, else
``$XDG_CACHE_HOME/lodabench``, else ``~/.cache/lodabench``), with huggingface_hub's progress bars.
A branch (``refs/convert/parquet``, ``main``) moves, so the commit it resolved to is recorded
(``inputs["resolved_revision"]``) and the task's later splits are fetched at that commit. A revision
already in the cache is read from it without asking the hub (``local_files_only`` first): a rerun
reads the data the first run read even if the branch has moved since; delete
``<cache_root>/hub/datasets--<owner>--<name>`` to take the newest.

Local directory (``hub_id`` an existing folder, or a path starting ``/``, ``.`` or ``~``): read in
place, no network. Its resolved revision is the commit that ``hf download --local-dir`` wrote for the
files read (``<dir>/.cache/huggingface/download/<file>.metadata``, first line), when all agree; else
null, and ``requested_revision`` is what the config says the folder mirrors.

``task.inputs`` (JSON): ``{"source": "data_root", "data_root", "files"}`` or ``{"source": "hub",
"hub_id", "requested_revision", "resolved_revision", "local_dir", "files"}``; ``files`` are relative
names (to the data root, or to ``local_dir``), appended as each split is read, so the block is
complete once the run has loaded its splits (preflight loads them before training).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lodabench.errors import DataError
from lodabench.paths import DATA_ROOT_ENV, cache_root

log = logging.getLogger(__name__)

#: The hub's parquet export of a repository (the dataset viewer's conversion; a branch).
PARQUET_EXPORT = "refs/convert/parquet"
_METADATA_DIR = Path(".cache") / "huggingface" / "download"  # what `hf download --local-dir` writes


def split_patterns(config: str, split: str) -> tuple[str, str]:
    """The file patterns of one split: the parquet export's, then a parquet repository's."""
    return (f"{config}/{split}/*.parquet", f"{config}/{split}-*.parquet")


def hub_cache_dir() -> Path:
    """huggingface_hub's cache layout (``datasets--owner--name/snapshots/<commit>/``) under the cache root."""
    return cache_root() / "hub"


def is_local(hub_id: str) -> bool:
    """A folder, or something written as a path (so a typo fails as a missing folder, not a repo)."""
    return hub_id.startswith(("/", ".", "~")) or Path(hub_id).expanduser().is_dir()


def mirror_hint(hub_id: str, revision: str) -> str:
    """How to read the data without network here (message tail)."""
    return (f"Fix: on a machine with network run `hf download {hub_id} --repo-type dataset --revision "
            f"{revision} --local-dir DIR`, copy DIR here and set data.hub_id=DIR; or set {DATA_ROOT_ENV} "
            "(or paths.data_root) to a folder holding the official files (README 'Data')")


class DataSource:
    """Where one task reads its splits from; ``inputs`` records what it read."""

    def __init__(self, data_root: Path | None, hub_id: str, revision: str, config: str, origin: str | None = None):
        """``origin``: the hub repository the task's data comes from (what a local hub_id folder mirrors)."""
        self.data_root, self.hub_id, self.revision, self.config = data_root, hub_id, revision, config
        self.origin = origin or hub_id
        self.inputs: dict[str, Any] = (_root_inputs(data_root) if data_root is not None
                                       else _hub_inputs(hub_id, revision))

    @property
    def is_hub(self) -> bool:
        return self.data_root is None

    def root_file(self, relative: str) -> Path:
        """``<data_root>/<relative>``, recorded as read."""
        assert self.data_root is not None, "root_file needs a data root"
        _note_file(self.inputs, relative)
        return self.data_root / relative

    def where(self, split: str) -> str:
        """How messages name a hub split: ``tuetschek/e2e_nlg@refs/convert/parquet default/test``."""
        return f"hub dataset {self.hub_id}@{self.revision} {self.config}/{split}"

    def hub_rows(self, split: str, columns: Sequence[str]) -> list[dict]:
        """The rows of a hub split (its parquet files in name order), ``columns`` only."""
        rows: list[dict] = []
        for path in self._split_files(split):
            rows.extend(read_parquet_rows(path, columns, self.where(split)))
        return rows

    def _split_files(self, split: str) -> list[Path]:
        patterns = split_patterns(self.config, split)
        base = Path(self.inputs["local_dir"]) if is_local(self.hub_id) else self._download(patterns)
        files = matching_files(base, patterns)
        if not files:
            raise DataError(layout_message(base, patterns, self.origin, self.revision, split))
        for path in files:
            _note_file(self.inputs, path.relative_to(base).as_posix())
        if is_local(self.hub_id):
            self.inputs["resolved_revision"] = mirrored_commit(base, self.inputs["files"])
        return files

    def _download(self, patterns: Sequence[str]) -> Path:
        """The snapshot folder holding ``patterns``: from the cache, else downloaded."""
        revision = self.inputs["resolved_revision"] or self.revision  # later splits: the same commit
        folder = _cached_snapshot(self.hub_id, revision, patterns) or _fetch(self.hub_id, revision, patterns)
        self.inputs["resolved_revision"] = folder.name  # snapshots/<commit>
        self.inputs["local_dir"] = str(folder)
        return folder


def as_source(data_root: Path | DataSource | None, hub_id: str, revision: str, config: str) -> DataSource:
    """``data_root`` as a DataSource (callers that pass a plain root get the task's default hub)."""
    if isinstance(data_root, DataSource):
        return data_root
    return DataSource(Path(data_root) if data_root is not None else None, hub_id, revision, config, hub_id)


def _root_inputs(data_root: Path) -> dict[str, Any]:
    return {"source": "data_root", "data_root": str(Path(data_root).resolve()), "files": []}


def _hub_inputs(hub_id: str, revision: str) -> dict[str, Any]:
    local = str(Path(hub_id).expanduser().resolve()) if is_local(hub_id) else None
    if local is not None and not Path(local).is_dir():
        raise DataError(f"data.hub_id={hub_id!r} is written as a path but {local} is not a directory. Fix: "
                        "point data.hub_id at a folder laid out like the hub's parquet export "
                        "(default/{train,validation,test}/0000.parquet), or give a hub id (owner/name)")
    return {"source": "hub", "hub_id": local or hub_id, "requested_revision": revision,
            "resolved_revision": None, "local_dir": local, "files": []}


def _note_file(inputs: dict[str, Any], relative: str) -> None:
    if relative not in inputs["files"]:
        inputs["files"].append(relative)


def matching_files(base: Path, patterns: Sequence[str]) -> list[Path]:
    """The files of the first pattern that matches any, in name order (shards 0000, 0001, ...)."""
    for pattern in patterns:
        files = sorted(p for p in base.glob(pattern) if p.is_file())
        if files:
            return files
    return []


def layout_message(base: Path, patterns: Sequence[str], hub_id: str, revision: str, split: str) -> str:
    return (f"{base}: no parquet file for split {split!r}: expected {base / patterns[0]} (the hub's parquet "
            f"export, revision {PARQUET_EXPORT}: e.g. default/{split}/0000.parquet) or {base / patterns[1]} "
            f"(a parquet repository's own files). {mirror_hint(hub_id, revision)}")


def read_parquet_rows(path: Path, columns: Sequence[str], where: str) -> list[dict]:
    """The rows of one parquet file as dicts; DataError names the file and any missing column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"{path}: not a readable parquet file ({err}); {where} expects the hub's parquet "
                        "files. Fix: download the split again (delete the file)") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(f"{path}: no column(s) {missing} (it has {names}); {where} needs {list(columns)}. "
                        "Fix: data.hub_id must name this task's dataset (see the task's data.hub_id help)")
    return pq.read_table(path, columns=list(columns)).to_pylist()


def mirrored_commit(base: Path, files: Sequence[str]) -> str | None:
    """The commit ``hf download --local-dir`` recorded for every file read, if there is one."""
    commits = set()
    for name in files:
        meta = base / _METADATA_DIR / f"{name}.metadata"
        commits.add(meta.read_text(encoding="utf-8").split("\n", 1)[0].strip() if meta.is_file() else None)
    return commits.pop() if len(commits) == 1 and None not in commits else None


def _snapshot_download(hub_id: str, revision: str, patterns: Sequence[str], **kwargs: Any) -> Path:
    import huggingface_hub  # looked up at call time (tests stand in for it)

    folder = huggingface_hub.snapshot_download(repo_id=hub_id, repo_type="dataset", revision=revision,
                                               allow_patterns=list(patterns), cache_dir=str(hub_cache_dir()),
                                               **kwargs)
    return Path(folder)


def _cached_snapshot(hub_id: str, revision: str, patterns: Sequence[str]) -> Path | None:
    """The cached snapshot if it already holds a split's files (no network), else None."""
    try:
        folder = _snapshot_download(hub_id, revision, patterns, local_files_only=True)
    except OSError:  # LocalEntryNotFoundError / IncompleteSnapshotError: not (all) cached yet
        return None
    return folder if matching_files(folder, patterns) else None


def _fetch(hub_id: str, revision: str, patterns: Sequence[str]) -> Path:
    log.info("downloading %s (revision %s, %s) into %s", hub_id, revision, " or ".join(patterns), hub_cache_dir())
    try:
        return _snapshot_download(hub_id, revision, patterns)
    except Exception as err:  # network, auth, unknown repo or revision: all end the same way
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        offline_note = " (HF_HUB_OFFLINE is set: downloads are off)" if offline else ""
        raise DataError(f"could not download {' or '.join(patterns)} of the hub dataset {hub_id!r} at revision "
                        f"{revision!r}{offline_note} ({type(err).__name__}: {str(err)[:300]}). "
                        f"{mirror_hint(hub_id, revision)}") from err


__all__ = ["DataSource", "PARQUET_EXPORT", "as_source", "hub_cache_dir", "is_local", "matching_files",
           "mirrored_commit", "read_parquet_rows", "split_patterns"]
