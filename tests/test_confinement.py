"""Confinement (issue #27): run names are validated, every directory a run writes, moves or cleans lies
strictly inside paths.results_dir (symlinks followed), hygiene deletes only lodabench's own temporary
names, and one spelling of a number names one run directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lodabench.errors import ConfigError
from lodabench.config.run_names import (MAX_NAME_BYTES, canonical_overrides, check_locations, check_not_nested,
                                 check_run_name, orphan_temp_files, override_slug, slug_in_runs)


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return {"results": results, "runs": results / "runs", "outside": tmp_path / "outside"}


def _locate(tree, name: str, run_dir: str | None = None, runs: Path | None = None) -> Path:
    runs = runs or tree["runs"]
    return check_locations(tree["results"], runs, name, run_dir or f"{runs}/{name}")


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("name, says", [
    ("", "empty"), ("..", "'..'"), ("a/../b", "'..'"), ("a//b", "''"), ("./a", "'.'"), ("a/", "''"),
    ("/tmp/x", "starts with '/'"), ("~/x", "starts with '/'"), ("a\x00b", "control character"),
    ("a\nb", "control character"), ("  ", "empty"),
])
def test_bad_run_names_are_refused_naming_the_key(name, says):
    with pytest.raises(ConfigError, match="run_name") as err:
        check_run_name(name)
    assert says in str(err.value) and "Fix" in str(err.value)


def test_components_are_capped_in_bytes_not_characters():
    check_run_name("a/" + "é" * (MAX_NAME_BYTES // 2))  # 254 bytes: fits
    with pytest.raises(ConfigError, match="bytes"):
        check_run_name("é" * 128)  # 128 characters, 256 bytes


def test_plain_nested_names_are_accepted(tree):
    assert _locate(tree, "e2e/tiny/lora/default/seed1") == tree["runs"] / "e2e/tiny/lora/default/seed1"


# ----------------------------------------------------------------------------- confinement
def test_runs_dir_outside_results_is_refused(tree):
    with pytest.raises(ConfigError, match="paths.runs_dir"):
        _locate(tree, "x", runs=tree["outside"])


def test_run_dir_override_outside_runs_is_refused(tree):
    with pytest.raises(ConfigError, match="not strictly inside paths.runs_dir"):
        _locate(tree, "x", run_dir=str(tree["outside"] / "x"))
    with pytest.raises(ConfigError, match="not strictly inside"):
        _locate(tree, "x", run_dir=str(tree["runs"]))  # the runs root itself is never a run


def test_a_symlink_out_of_the_results_tree_is_refused(tree):
    (tree["runs"] / "e2e").symlink_to(tree["outside"], target_is_directory=True)
    with pytest.raises(ConfigError, match="symlink"):
        _locate(tree, "e2e/tiny/seed1")


def test_a_results_dir_that_is_itself_a_symlink_is_fine(tree, tmp_path):
    link = tmp_path / "results-link"
    link.symlink_to(tree["results"], target_is_directory=True)
    assert check_locations(link, link / "runs", "a/seed1", f"{link}/runs/a/seed1")


def test_a_run_inside_another_run_is_refused(tree):
    (tree["runs"] / "a" / "seed1").mkdir(parents=True)
    (tree["runs"] / "a" / "seed1" / "record.json").write_text("{}")
    with pytest.raises(ConfigError, match="lies inside the run directory"):
        check_not_nested(tree["runs"], tree["runs"] / "a" / "seed1" / "sub")
    with pytest.raises(ConfigError, match="holds other runs"):
        check_not_nested(tree["runs"], tree["runs"] / "a")
    check_not_nested(tree["runs"], tree["runs"] / "a" / "seed1")  # the run itself


# ----------------------------------------------------------------------------- hygiene
def test_hygiene_finds_only_lodabench_temp_files(tree):
    run = tree["runs"] / "r"
    (run / "checkpoints").mkdir(parents=True)
    own = [run / ".record.json.ab12cd_9.tmp", run / "checkpoints" / ".latest.json.zz99yy00.tmp"]
    for path in own:
        path.write_text("x")
    for name in ("notes.tmp", ".mine.tmp", "a.b.c.tmp", ".x.UPPER.tmp"):
        (run / name).write_text("user file")
    (tree["outside"] / ".a.abcdefgh.tmp").write_text("outside")
    (run / "link").symlink_to(tree["outside"], target_is_directory=True)
    (run / ".l.abcdefgh.tmp").symlink_to(tree["outside"] / ".a.abcdefgh.tmp")
    (run / "other" / "seed1").mkdir(parents=True)
    (run / "other" / "seed1" / "record.json").write_text("{}")
    (run / "other" / "seed1" / ".b.abcdefgh.tmp").write_text("another run's")
    assert sorted(orphan_temp_files(run)) == sorted(own)


# ----------------------------------------------------------------------------- one spelling per number
@pytest.mark.parametrize("spelling", ["trainer.lr=.0002", "trainer.lr=2e-4", "trainer.lr=2E-4", "trainer.lr=+2e-4",
                                      "trainer.lr=0.0002", "trainer.lr=2.e-4", "trainer.lr=0.00_02"])
def test_every_spelling_of_a_number_names_one_directory(spelling):
    assert override_slug(spelling) == "trainer.lr=0.0002"


def test_ints_booleans_and_lists_are_spelt_as_a_sweep_prints_them():
    assert canonical_overrides("method.r=+8,trainer.max_steps=1_000") == "method.r=8,trainer.max_steps=1000"
    assert canonical_overrides("trainer.group_by_length=true") == "trainer.group_by_length=True"
    assert override_slug("selection.epochs=[1e-2, 2e-2]") == "selection.epochs=[0.01,0.02]"
    assert override_slug("experiment=e2e_loda,data.x='a b'") == "data.x='ab',experiment=e2e_loda"  # strings as typed


def test_a_long_multibyte_slug_fits_one_component_and_stays_distinct():
    a, b = override_slug("data.x=" + "é" * 110), override_slug("data.x=" + "é" * 109 + "e")
    assert len(a.encode()) <= MAX_NAME_BYTES and len(b.encode()) <= MAX_NAME_BYTES and a != b
    assert len(override_slug("data.x=" + "a" * 120)) == 113  # ASCII names keep their earlier form (100 + hash)


def test_existing_directories_keep_their_spelling(tmp_path):
    """A row made before names were canonical (``trainer.lr=.0002``) is found by the same command and by
    a sweep (which prints 0.0002); without it, the canonical name."""
    root = OmegaConf.create({"paths": {"runs_dir": str(tmp_path)}, "data": {"name": "e2e"},
                             "model": {"name": "m"}, "method": {"name": "lora"}})
    row = tmp_path / "e2e" / "m" / "lora"
    assert slug_in_runs("trainer.lr=.0002", _root_=root) == "trainer.lr=0.0002"
    (row / "trainer.lr=.0002" / "seed110").mkdir(parents=True)
    assert slug_in_runs("trainer.lr=0.0002", _root_=root) == "trainer.lr=.0002"
    assert slug_in_runs("trainer.lr=2e-4", _root_=root) == "trainer.lr=.0002"
    assert slug_in_runs("trainer.lr=3e-4", _root_=root) == "trainer.lr=0.0003"
    (row / "trainer.lr=0.0002").mkdir()
    assert slug_in_runs("trainer.lr=.0002", _root_=root) == "trainer.lr=0.0002"  # the canonical one wins


def test_the_hydra_capture_is_not_written_by_hydra():
    """conf/hydra/default.yaml: Hydra writes no .hydra/ and no job log (lodabench.run.capture does, once the
    launch is accepted), and the run directory goes through the confining resolvers."""
    conf = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "hydra" / "default.yaml")
    assert conf.output_subdir is None and conf.job_logging.handlers.file.filename == os.devnull
    assert OmegaConf.to_container(conf.run)["dir"].startswith("${lb_run_dir:")
    assert OmegaConf.to_container(conf.sweep)["subdir"].startswith("${lb_run_name:")
