"""Reliability of where runs write (issue #27): a bad run name or path is refused before anything is
written, nothing outside paths.results_dir is touched, a refused or skipped launch leaves its run
directory byte-identical (Hydra's ``.hydra/`` capture included), and one spelling of a number names
one run directory whether launched singly or in a sweep.

Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from lodabench.run.runlock import RunLock
from runs_helpers import TINY_E2E, assert_refused, run_cli, run_cli_here, run_script_here

torch.set_num_threads(1)
rel = pytest.mark.reliability


def snapshot(root: Path) -> dict[str, object]:
    """Every entry below ``root`` (symlinks not followed): its kind and bytes, or its link target."""
    found: dict[str, object] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            rel_path = str(path.relative_to(root))
            if path.is_symlink():
                found[rel_path] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel_path] = ("dir",)
            else:
                found[rel_path] = ("file", path.read_bytes())
    return found


@pytest.fixture
def trees(tmp_path) -> dict[str, Path]:
    """A results tree holding another run's files, and a sibling directory outside it."""
    results, sibling = tmp_path / "results", tmp_path / "sibling"
    other = results / "runs" / "e2e" / "tiny-gpt2" / "lora" / "default" / "seed110"
    other.mkdir(parents=True)
    (other / "record.json").write_text('{"status": "complete"}')
    (other / ".record.json.abcdefgh.tmp").write_text("another launch is writing this")
    sibling.mkdir()
    (sibling / "keep.txt").write_text("not lodabench's")
    return {"results": results, "sibling": sibling, "tmp": tmp_path}


def _refused_touching_nothing(trees, args: list[str], says: str, launch=run_cli_here) -> None:
    before = snapshot(trees["tmp"])
    assert_refused(launch([*TINY_E2E, *args], trees["results"], check=False), says)
    assert snapshot(trees["tmp"]) == before


# ----------------------------------------------------------------------------- bad names and paths
@rel(case="run_name=.. (and ../sibling)",
     done="launch the tiny E2E command with run_name=.. and with run_name=../../../sibling",
     expect="exit 2 before Hydra makes a directory, naming run_name and the fix; the results tree and a sibling "
            "directory outside it are byte-identical")
@pytest.mark.parametrize("name", ["..", "../../../sibling"])
def test_dotdot_run_name_is_refused_and_touches_nothing(trees, name):
    _refused_touching_nothing(trees, [f"run_name={name}"], "run_name=")


@rel(case="empty run_name",
     done="launch with run_name= (the runs root itself would be the run: hygiene and force=true would act on "
          "every run)",
     expect="exit 2 naming run_name, nothing written or deleted (another run's temporary file survives)")
def test_empty_run_name_is_refused_and_touches_nothing(trees):
    _refused_touching_nothing(trees, ["run_name="], "run_name is empty")


@rel(case="absolute run_name, run_name with an empty or '.' component",
     done="launch with run_name=/abs/sibling, run_name=a//b, run_name=a/./b",
     expect="exit 2 naming run_name, nothing written")
@pytest.mark.parametrize("name", ["ABS", "a//b", "a/./b"])
def test_absolute_and_dotted_run_names_are_refused(trees, name):
    name = str(trees["sibling"]) if name == "ABS" else name
    _refused_touching_nothing(trees, [f"run_name={name}"], "run_name=")


@rel(case="paths.runs_dir outside paths.results_dir",
     done="launch with paths.runs_dir=<a sibling directory of the results dir>",
     expect="exit 2 naming paths.runs_dir and paths.results_dir, the sibling untouched")
def test_runs_dir_outside_results_is_refused(trees):
    _refused_touching_nothing(trees, [f"paths.runs_dir={trees['sibling']}"], "paths.runs_dir")


@rel(case="Hydra's own output outside paths.results_dir",
     done="launch with hydra.run.dir=<a sibling directory>",
     expect="exit 2 naming hydra.run.dir; Hydra creates nothing there")
def test_hydra_run_dir_outside_results_is_refused(trees):
    _refused_touching_nothing(trees, [f"hydra.run.dir={trees['sibling']}/x"], "hydra.run.dir")


@rel(case="a symlink in the results tree leading outside",
     done="results/runs/e2e is a symlink to a directory outside the results dir; launch the default-named run",
     expect="exit 2 (symlinks followed, the run directory is not inside paths.runs_dir); nothing is created "
            "through the link")
def test_symlink_out_of_results_is_refused(tmp_path):
    results, outside = tmp_path / "results", tmp_path / "outside"
    (results / "runs").mkdir(parents=True)
    outside.mkdir()
    (results / "runs" / "e2e").symlink_to(outside, target_is_directory=True)
    trees = {"results": results, "tmp": tmp_path}
    _refused_touching_nothing(trees, [], "symlinks followed")


@rel(case="newline in a run name, a run name over 255 bytes in one component",
     done="launch with run_name='a<newline>b' and a one-component name of 128 two-byte characters",
     expect="exit 2 naming run_name (control character / bytes), nothing written")
@pytest.mark.parametrize("name, says", [("'a\nb'", "control character"), ("'" + "é" * 128 + "'", "bytes")],
                         ids=["newline", "over-255-bytes"])
def test_control_characters_and_long_names_are_refused(trees, name, says):
    _refused_touching_nothing(trees, [f"run_name={name}"], says)


@rel(case="a bad run name in a sweep",
     done="-m run_name=ok,..",
     expect="exit 2 before any job runs, naming run_name; nothing written")
def test_bad_name_in_a_sweep_is_refused_before_any_job(trees):
    # a real `python -m lodabench` process: the refusal door itself stays covered end to end
    _refused_touching_nothing(trees, ["-m", "run_name=ok,.."], "run_name=", launch=run_cli)


@rel(case="a run name inside another run's directory",
     done="launch with run_name=<an existing run>/sub (force=true of the outer run would move it into attempts/)",
     expect="exit 2 naming the outer run directory; nothing written")
def test_run_inside_another_run_is_refused(trees):
    _refused_touching_nothing(trees, ["run_name=e2e/tiny-gpt2/lora/default/seed110/sub"], "lies inside the run")


# ----------------------------------------------------------------------------- one spelling per number
APP = """
import hydra
import lodabench.run.entry
from lodabench.paths import CONF_DIR
from lodabench.config.schema import store_schema

store_schema()

@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg):
    print("RUN " + cfg.run_name, flush=True)

main()
"""


def _names(tmp_path: Path, *args: str, results: str = "results") -> list[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    proc = run_script_here(app, list(args), {"LODABENCH_RESULTS_DIR": str(tmp_path / results)}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line[4:] for line in proc.stdout.splitlines() if line.startswith("RUN ")]


@rel(case="the same number spelt two ways (.0002, 2e-4) between a single run and a sweep",
     done="resolve the run directory of trainer.lr=.0002 and trainer.lr=2e-4 singly, and of -m trainer.lr=2e-4,3e-4",
     expect="one directory (trainer.lr=0.0002) for all three; a row made earlier under trainer.lr=.0002 keeps "
            "its name and the sweep finds it")
def test_one_spelling_between_single_runs_and_sweeps(tmp_path):
    (single_dot,), (single_e,) = _names(tmp_path, "trainer.lr=.0002"), _names(tmp_path, "trainer.lr=2e-4")
    swept = _names(tmp_path, "-m", "trainer.lr=2e-4,3e-4")
    assert single_dot == single_e == swept[0] and "trainer.lr=0.0002" in single_dot
    old_row = tmp_path / "earlier" / "runs" / "e2e" / "tiny-gpt2" / "lora" / "trainer.lr=.0002"
    (old_row / "seed110").mkdir(parents=True)  # made by a single run before names were canonical
    swept = _names(tmp_path, "-m", "trainer.lr=2e-4,3e-4", results="earlier")
    assert swept == ["e2e/tiny-gpt2/lora/trainer.lr=.0002/seed110", "e2e/tiny-gpt2/lora/trainer.lr=0.0003/seed110"]


# ----------------------------------------------------------------------------- refused and skipped launches
@pytest.fixture(scope="module")
def done(tmp_path_factory, complete_run):
    """One complete tiny E2E run (made once per session, conftest.complete_run); tests copy its directory."""
    results, run_dir = complete_run(TINY_E2E, tmp_path_factory.mktemp("done") / "results")
    return {"results": results, "run_dir": run_dir}


def _copy(done, tmp_path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    shutil.copytree(done["results"], results, symlinks=True)
    return results, results / done["run_dir"].relative_to(done["results"])


@pytest.mark.slow
@rel(case="Hydra's capture of an accepted launch",
     done="tiny run to completion",
     expect="<run_dir>/.hydra/{config,hydra,overrides}.yaml and <run_dir>/entry.log are written (by lodabench, "
            "once the launch is accepted); overrides.yaml lists the command's overrides")
def test_an_accepted_launch_writes_the_capture(done):
    run_dir = done["run_dir"]
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert all(f"- {arg}" in overrides for arg in TINY_E2E)
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / ".hydra" / "hydra.yaml").is_file()
    assert "complete" in (run_dir / "entry.log").read_text() or (run_dir / "entry.log").stat().st_size > 0


@pytest.mark.slow
@rel(case="a skipped (complete) launch",
     done="the same command again on a complete run, with one more override that is not identity "
          "(trainer.num_threads=1)",
     expect="skip; the run directory is byte-identical: .hydra/ still holds the first launch's capture, no log "
            "line, no record change")
def test_skipped_launch_writes_nothing(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    before = snapshot(run_dir)
    proc = run_cli_here([*TINY_E2E, "trainer.num_threads=1"], results)  # skips before training: in this process
    assert "skip (complete)" in proc.stdout
    assert snapshot(run_dir) == before


@pytest.mark.slow
@rel(case="a conflict-refused launch",
     done="the record's config is edited (as if the overlay changed), then the same command is launched",
     expect="exit 2 naming the changed value; the run directory is byte-identical (.hydra/, record, log)")
def test_conflict_refused_launch_writes_nothing(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    record = json.loads((run_dir / "record.json").read_text())
    record["config"]["trainer"]["weight_decay"] = 0.5
    (run_dir / "record.json").write_text(json.dumps(record))
    before = snapshot(results)
    proc = run_cli_here(TINY_E2E, results, check=False)
    assert proc.returncode == 2 and "trainer.weight_decay" in proc.stderr, proc.stderr[-2000:]
    assert snapshot(results) == before


@pytest.mark.slow
@rel(case="a launch refused because the lock is held",
     done="another process holds <run_dir>/.lock; launch the same command",
     expect="exit 2 naming the holder; the run directory is byte-identical")
def test_lock_refused_launch_writes_nothing(done, tmp_path):
    results, run_dir = _copy(done, tmp_path)
    with RunLock(run_dir):
        before = snapshot(results)
        proc = run_cli_here([*TINY_E2E, "force=true"], results, check=False)
        assert proc.returncode == 2 and "in use by another launch" in proc.stderr, proc.stderr[-2000:]
        assert snapshot(results) == before
