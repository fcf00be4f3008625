"""Sweep presets and experiment overlays: the job lists are exactly what the papers' tables need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lodabench.run import sweeps
from lodabench.errors import ConfigError
from lodabench.paths import CONF_DIR

SEEDS = {110, 111, 112}
TABLE1_ROWS = (["lora", "loda", "loda_plus"]
               + [f"r_loda{p}_r{r}" for p in ("", "_plus") for r in (300, 400, 500)]
               + [f"s_loda{p}_p0{k}" for p in ("", "_plus") for k in (4, 5, 6)])


def expected_method(row: str) -> tuple[str, int | None, float | None]:
    """Method name, R and keep fraction a Table-1 row name stands for (e.g. s_loda_plus_p04)."""
    if row.startswith("r_loda"):
        name, r = row.rsplit("_r", 1)
        return name, int(r), None
    if row.startswith("s_loda"):
        name, p = row.rsplit("_p", 1)
        return name, None, int(p) / 10
    return row, None, None


@pytest.mark.slow  # composes every job of a table grid (54 jobs)
@pytest.mark.parametrize("data,name", [("e2e", "e2e_table1"), ("dart", "dart_table2")])
def test_table_presets_list_every_row_times_three_seeds(data: str, name: str) -> None:
    jobs = sweeps.expand(name)
    assert len(jobs) == len(TABLE1_ROWS) * len(SEEDS)
    exps = {o.split("=", 1)[1] for j in jobs for o in j.overrides if o.startswith("experiment=")}
    assert exps == {f"{data}_{row}" for row in TABLE1_ROWS}
    assert len({j.run_dir for j in jobs}) == len(jobs)          # no two jobs share a run directory
    for job in jobs:
        row = next(o for o in job.overrides if o.startswith("experiment=")).split("=", 1)[1][len(data) + 1:]
        method, rank, keep = expected_method(row)
        assert (job.data, job.model, job.method["name"]) == (data, "gpt2-medium", method)
        assert job.method["r"] == 4 and list(job.method["targets"]) == ["q", "v"]
        if rank is not None:
            assert job.method["rank"] == rank
        if keep is not None:
            assert job.method["keep"] == pytest.approx(keep)
        assert job.seed in SEEDS
    assert {j.seed for j in jobs} == SEEDS


def test_sweep_values_and_command_line_override() -> None:
    ranks = sweeps.expand("e2e_r_loda_rank", ["seed=110"])
    assert sorted((j.method["name"], j.method["rank"]) for j in ranks) == sorted(
        (m, r) for m in ("r_loda", "r_loda_plus") for r in (300, 400, 500))
    keeps = sweeps.expand("e2e_s_loda_keep", ["seed=110"])
    assert sorted({round(j.method["keep"], 2) for j in keeps}) == [0.4, 0.5, 0.6]
    assert {j.seed for j in keeps} == {110}
    lora = sweeps.expand_params(sweeps.preset_params("e2e_lora_rank"))
    assert sorted({c[1] for c in lora}) == ["method.r=1", "method.r=2", "method.r=4", "method.r=8"]
    assert len(lora) == 12


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="e2e_table1"):
        sweeps.preset_params("nope")


def test_every_overlay_composes() -> None:
    GlobalHydra.instance().clear()
    names = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert {f"e2e_{r}" for r in TABLE1_ROWS} <= set(names)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for name in names:
            if not name.startswith(("e2e_", "dart_")):
                continue  # GLUE overlays belong to another engineer
            cfg = compose(config_name="config", overrides=[f"experiment={name}"])
            assert cfg.model.name == "gpt2-medium", name
            assert cfg.data.name == name.split("_", 1)[0], name
            assert cfg.trainer.lr == pytest.approx(2e-4) and cfg.decoding.num_beams == 10, name
            if name.startswith("dart_"):
                assert cfg.decoding.length_penalty == pytest.approx(0.8), name
    GlobalHydra.instance().clear()


APP = """
import json, hydra
import lodabench.run.entry
from lodabench.paths import CONF_DIR
from lodabench.config.schema import store_schema

store_schema()  # as lodabench.run.entry.main does before Hydra composes

@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg):
    print("JOB " + json.dumps({"run_name": cfg.run_name, "method": cfg.method.name, "seed": cfg.seed}), flush=True)

main()
"""


@pytest.mark.slow  # a real 12-job Hydra multirun in a subprocess
def test_hydra_multirun_runs_exactly_the_listed_jobs(tmp_path: Path) -> None:
    """The real `-m +sweep=...` (Hydra's basic sweeper, the lead's hydra/default.yaml) = sweeps.expand."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {**os.environ, "LODABENCH_RESULTS_DIR": str(tmp_path / "results")}
    res = subprocess.run([sys.executable, str(app), "-m", "+sweep=e2e_s_loda_keep", "seed=110,111"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    ran = [json.loads(line[4:]) for line in res.stdout.splitlines() if line.startswith("JOB ")]
    listed = sweeps.expand("e2e_s_loda_keep", ["seed=110,111"])
    assert sorted(r["run_name"] for r in ran) == sorted(j.run_name for j in listed)
    assert len(ran) == 12


def test_run_dir_slug_is_the_same_for_a_single_run_and_a_sweep():
    """Hydra's multirun re-prints 1e-2 as 0.01: both spellings must name one run directory, also when
    the name is long enough to be shortened with a hash (found by the reliability test of edited configs)."""
    from lodabench.config.run_names import override_slug

    short_single, short_sweep = "method.r=8,trainer.lr=1e-2", "method.r=8,trainer.lr=0.01"
    assert override_slug(short_single) == override_slug(short_sweep) == "method.r=8,trainer.lr=0.01"
    tail = ",".join(f"data.key{i}=value{i}" for i in range(12))
    single, sweep = override_slug(f"trainer.lr=1e-2,{tail}"), override_slug(f"trainer.lr=0.01,{tail}")
    assert single == sweep and len(single) == 113
    assert override_slug(f"trainer.lr=0.02,{tail}") != single


def test_rank0_resolver_keeps_hydra_files_on_the_main_process(monkeypatch):
    """``${lb_rank0:.hydra}``: the value on rank 0 (or outside torchrun), null on the other ranks."""
    from lodabench.config.run_names import on_rank0

    monkeypatch.delenv("RANK", raising=False)
    assert on_rank0(".hydra") == ".hydra"
    monkeypatch.setenv("RANK", "1")
    assert on_rank0(".hydra") is None and on_rank0("a.log", "/dev/null") == "/dev/null"
