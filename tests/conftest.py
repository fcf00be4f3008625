"""Shared fixtures: locations of ../shared (real data, golden scorer cases, GPT-2 tokenizer).

Outside CI a missing ../shared skips the tests that need it, with the reason; under CI=true its
absence is a failure, because CI always has it beside the clone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from lodabench.machine import keep_freed_memory
from lodabench.paths import resolve_data_root, shared_dir
from lodabench.config.schema import store_schema

torch.set_num_threads(1)
# As a run does (trainer.keep_freed_memory): tests that train in this process reuse freed heap memory
# instead of faulting in fresh pages for every large tensor.
keep_freed_memory(True)
# Tests compose conf/ with Hydra's compose API: the code-defined options (methods, trainer, decoding
# beam, ...) must be in the ConfigStore first, as entry.main puts them before Hydra composes.
store_schema()

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _need(path: Path | None, what: str) -> Path:
    if path is not None and path.exists():
        return path
    msg = f"{what} not found (expected ../shared beside the repository or LODABENCH_DATA_ROOT)"
    if IN_CI:
        pytest.fail(f"{msg}; under CI=true ../shared must be present")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared() -> Path:
    return _need(shared_dir(), "../shared")


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _need(resolve_data_root(), "data root")


@pytest.fixture(scope="session")
def golden_dir(shared: Path) -> Path:
    return _need(shared / "golden", "../shared/golden")


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir(shared: Path) -> Path:
    return _need(shared / "tokenizers" / "gpt2", "../shared/tokenizers/gpt2")


# ----------------------------------------------------------------------------------------------
# Complete tiny CLI runs, made once per test session: several modules need "one complete tiny E2E
# run" of the same command to copy and break; each used to make its own (~1 min each on a busy
# 2-core machine). Every caller still gets a private copy, so no module sees another's changes.

def _session_root(tmp_path_factory) -> Path:
    """A folder of this pytest session that every xdist worker sees: the parent of the workers'
    basetemps under xdist, else the basetemp itself (its parent is shared with other sessions)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def complete_run(tmp_path_factory, data_root, gpt2_tokenizer_dir):
    """``make(args, dest)``: copy into ``dest`` (a new folder) the results tree of one complete CLI
    run of ``args`` and return ``(dest, run_dir)``; each distinct command runs once per session.

    The run is launched under umask 022 (whatever the caller's), and the copy keeps its files' modes,
    so a test may check the modes a run writes (tests/test_reliability_ranges.py)."""
    import fcntl

    from runs_helpers import run_cli_here, run_dirs

    root = _session_root(tmp_path_factory) / "complete-runs"
    root.mkdir(exist_ok=True)

    def make(args: list[str], dest: Path) -> tuple[Path, Path]:
        made = root / hashlib.sha256("\0".join(args).encode()).hexdigest()[:16]
        with open(f"{made}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits for the run, then copies it
            if not (made / "complete").is_file():
                shutil.rmtree(made, ignore_errors=True)  # a run that failed in an earlier caller
                umask = os.umask(0o022)  # the launch runs in this process (run_cli_here)
                try:
                    run_cli_here(args, made / "results")
                finally:
                    os.umask(umask)
                (made / "complete").write_text("\n".join(args))
        shutil.copytree(made / "results", dest, symlinks=True)
        (run_dir,) = run_dirs(dest)
        return dest, run_dir

    return make

@pytest.fixture(scope="session")
def session_folder(tmp_path_factory):
    """``make(key, build)``: the folder ``build(folder)`` filled, built once per test session under
    ``key`` (the other xdist worker waits, then reuses it). Callers copy it, never change it."""
    import fcntl

    root = _session_root(tmp_path_factory) / "session-folders"
    root.mkdir(exist_ok=True)

    def make(key: str, build) -> Path:
        folder = root / key
        with open(f"{folder}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (root / f"{key}.complete").is_file():
                shutil.rmtree(folder, ignore_errors=True)  # a build that failed in an earlier caller
                folder.mkdir()
                build(folder)
                (root / f"{key}.complete").write_text(key)
        return folder

    return make

# ----------------------------------------------------------------------------------------------
# Costliest test files first. `make test` runs `-n 2 --dist loadfile --no-loadscope-reorder`: xdist
# hands out whole files in collection order (without the flag it reorders them by number of tests),
# so a costly file collected last would leave one worker busy alone for minutes at the end.
# Worker seconds of `make test` (junit, results/bench/test_suite.md, eighth pass), costliest first,
# except test_scoring_dart.py: it reads the DART golden outputs that test_paired_dart.py builds
# (tests/dart_golden_outputs.py), so it comes after enough other work that the other worker finds
# them built instead of waiting on the file lock (it starts ~170 s in; the builds end at ~120 s).
# Until the eighth pass it ran last, and its 69 s alone at the end left the workers ~60 s apart.
# Files not listed keep their place (by name) after these. Every worker sorts the same way, so the
# collections agree.
COSTLIEST_FILES = (
    "test_paired_dart.py",  # 122 s
    "test_ddp.py",  # 69 s
    "test_scale_out.py",  # 52 s
    "test_scoring_e2e.py",  # 49 s
    "test_tables_e2e.py",  # 45 s
    "test_reliability.py",  # 44 s
    "test_scoring_dart.py",  # 69 s (after the DART builds, see above)
    "test_reference_check.py",  # 42 s
    "test_trainer_fast.py",  # 37 s
    "test_reliability_state.py",  # 34 s
    "test_data_hub.py",  # 34 s
    "test_sweeps.py",  # 29 s
    "test_gpu_check.py",  # 25 s
    "test_real_results.py",  # 23 s
    "test_reliability_attempts.py",  # 22 s
    "test_plugins.py",  # 22 s
    "test_real_models.py",  # 21 s
    "test_registries.py",  # 20 s
    "test_reliability_plugins.py",  # 19 s
)


def pytest_collection_modifyitems(session, config, items):
    """Order the files as COSTLIEST_FILES, the rest after them by name, each file's tests in their order."""
    rank = {name: i for i, name in enumerate(COSTLIEST_FILES)}

    def key(item) -> int:
        return rank.get(item.path.name, len(COSTLIEST_FILES))

    items[:] = sorted(items, key=key)  # stable


# ----------------------------------------------------------------------------------------------
# results/reliability.md: the table of reliability cases and their outcomes, written by the test run.
#
# A test marked ``@pytest.mark.reliability(case=..., done=..., expect=...)`` is one row. Rows are
# keyed by test id and sorted by it; a run that executes only some of the cases (``-k``) updates
# those rows and keeps the others as they were, so the file changes only when an outcome does.

RELIABILITY_TABLE = Path(__file__).resolve().parents[1] / "results" / "reliability.md"
_RELIABILITY: dict[str, dict[str, str]] = {}
_TABLE_HEAD = ("| test | case | what was done | expected | outcome |\n"
               "|---|---|---|---|---|\n")


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability(case, done, expect): a row of results/reliability.md")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    marker = item.get_closest_marker("reliability")
    if marker is None:
        return
    rep = outcome.get_result()
    row = _RELIABILITY.setdefault(item.nodeid, {"case": marker.kwargs.get("case", item.name),
                                        "done": marker.kwargs.get("done", ""),
                                        "expect": marker.kwargs.get("expect", ""), "outcome": "pass"})
    if rep.failed:
        row["outcome"] = "fail" if rep.when == "call" else f"error ({rep.when})"
    elif rep.skipped and row["outcome"] == "pass":
        reason = rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        row["outcome"] = f"skipped: {reason.removeprefix('Skipped: ')}"


def _read_table(path: Path) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 5 and cells[0] not in ("test", "---") and not cells[0].startswith("---"):
            rows[cells[0].strip("`")] = dict(zip(("case", "done", "expect", "outcome"), cells[1:]))
    return rows


def pytest_sessionfinish(session, exitstatus):
    if not _RELIABILITY:
        return
    import fcntl

    # Under pytest-xdist every worker merges its own rows: serialise read-merge-write.
    RELIABILITY_TABLE.parent.mkdir(parents=True, exist_ok=True)
    with open(RELIABILITY_TABLE.parent / ".reliability.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _write_reliability_table()


def _write_reliability_table() -> None:
    from lodabench.io import atomic_write_text

    rows = _read_table(RELIABILITY_TABLE)
    rows.update(_RELIABILITY)
    n_pass = sum(r["outcome"] == "pass" for r in rows.values())
    body = "".join(f"| `{key}` | {_cell(r['case'])} | {_cell(r['done'])} | {_cell(r['expect'])} | {_cell(r['outcome'])} |\n"
                   for key, r in sorted(rows.items()))
    text = ("# Reliability cases\n\n"
            "Generated by `pytest tests/test_reliability*.py` (tests/conftest.py); do not edit by hand. "
            "Each row is one test marked `@pytest.mark.reliability`; a partial run updates only its own rows.\n\n"
            f"{n_pass} of {len(rows)} cases pass.\n\n" + _TABLE_HEAD + body)
    old = RELIABILITY_TABLE.read_text(encoding="utf-8") if RELIABILITY_TABLE.is_file() else None
    if text != old:
        atomic_write_text(RELIABILITY_TABLE, text)
