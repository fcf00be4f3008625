"""Launcher presets: submitit_slurm composes and turns into a valid sbatch script without a cluster;
joblib and submitit (local executor) run a sweep whose failing jobs do not stop the others."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

import lodabench.config.run_names  # noqa: F401  (registers the lb_slug resolver used by run_name)
from lodabench.paths import CONF_DIR, REPO_ROOT
from runs_helpers import run_cli_here


def lodabench_cli(args: list[str], results: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "LODABENCH_RESULTS_DIR": str(results), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "lodabench", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_submitit_slurm_preset_composes_without_slurm(tmp_path):
    proc = run_cli_here(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu-a100",
                         "hydra.launcher.timeout_min=90", "--cfg", "hydra"], tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    launcher = OmegaConf.create(proc.stdout).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu-a100" and launcher.timeout_min == 90 and launcher.gpus_per_node == 1
    for key in ("cpus_per_task", "mem_gb", "array_parallelism", "setup", "max_num_timeout"):
        assert key in launcher, key


def test_submitit_slurm_preset_is_type_checked(tmp_path):
    proc = run_cli_here(["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=ninety", "--cfg", "hydra"],
                        tmp_path, check=False)
    assert proc.returncode != 0 and "timeout_min" in proc.stderr


@pytest.fixture
def hydra_cfg(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose("config", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()


def test_submitit_slurm_preset_makes_a_valid_sbatch_script(tmp_path, monkeypatch, hydra_cfg):
    """Every key of the preset is accepted by submitit's SLURM executor, and the sbatch script asks for
    the partition, GPU, time and setup lines. Only the cluster is faked: an `srun` on PATH (submitit
    checks for it) and the submission itself, captured instead of calling sbatch."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    srun = fake_bin / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    cfg = hydra_cfg(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu-a100",
                     'hydra.launcher.setup=["export LODABENCH_DATA_ROOT=/shared/data"]',
                     f"hydra.sweep.dir={tmp_path / 'runs'}", f"hydra.launcher.submitit_folder={tmp_path / 'sub'}/%j"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    captured = {}

    class Submitted(Exception):
        pass

    def fake_map_array(self, fn, *iterables):
        captured["sbatch"] = self._executor._make_submission_file_text("python -u -m submitit.core._submit", "u0")
        captured["n_jobs"] = len(iterables[0])
        raise Submitted

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    with pytest.raises(Submitted):
        launcher.launch([["seed=110"], ["seed=111"]], initial_job_idx=0)
    script = captured["sbatch"]
    assert captured["n_jobs"] == 2
    for line in ("#SBATCH --partition=gpu-a100", "#SBATCH --gpus-per-node=1", "#SBATCH --time=720",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --job-name=lodabench",
                 "export LODABENCH_DATA_ROOT=/shared/data"):
        assert line in script, (line, script)


def test_joblib_preset_composes(hydra_cfg):
    cfg = hydra_cfg(["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 3


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [["hydra/launcher=joblib", "hydra.launcher.n_jobs=1"],
                                      ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]],
                         ids=["joblib", "submitit_local"])
def test_failed_jobs_do_not_stop_the_sweep(tmp_path, launcher):
    """Two jobs that each fail with a ConfigError (method.r not positive: a value the schema's types
    accept and preflight refuses, so the command starts and each job fails) run one after the other: both
    leave a failed record, and the multirun then exits 1 listing both (the failed-jobs file reaches the
    launching process from joblib's and submitit's own processes too). submitit_local runs each job in
    its own process through the same BaseSubmititLauncher code as submitit_slurm (pickled task function)."""
    proc = lodabench_cli(["-m", *launcher, "model=tiny-gpt2", "method.r=0,-1"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "2 job(s) of this multirun failed" in proc.stderr and proc.stderr.count("must be a positive integer") >= 2
    records = sorted((tmp_path / "runs").rglob("record.json"))
    assert len(records) == 2, records
    for path in records:
        record = json.loads(path.read_text())
        assert record["status"] == "failed" and "method.r=" in record["error"], record.get("error")
