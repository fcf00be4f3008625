#!/usr/bin/env python
"""Issue #10: the seeds' claims on REAL pretrained weights and real data, through the harness.

Two grids, each run through the one entrypoint (``python -m lodabench``) with its records under a
committed folder (weights never: results/.gitignore):

* ``minilm_glue``  all-MiniLM-L6-v2 on GLUE RTE, MRPC, STS-B, CoLA, SST-2 (experiment overlays
  conf/experiment/minilm_glue_<task>.yaml), methods ft, lora, loda, loda_plus, condlora, dora,
  r_loda (R=150), s_loda (p=0.5), prompt; seeds 110, 111, 112; records in results/minilm_glue/runs.
* ``smollm2_e2e``  SmolLM2-135M on E2E (conf/experiment/smollm2_e2e.yaml), methods lora,
  loda, loda_plus, r_loda (R=225), s_loda (p=0.5), ft, plus the untuned model; seeds as above;
  records in results/smollm2_e2e/runs.

Learning rates (MiniLM): each method FAMILY (ft | low-rank adapters | prompt) has two candidate
values; on each task the family's representative (ft, lora, prompt) is trained at both with seed
110 under data.protocol=holdout, and the value with the lower loss on the held-out 10% of TRAIN
after the last epoch wins (``select``; dev is never read). Every method of the family then uses
it on that task. The winning selection run IS that method's seed-110 run (same overrides, same
run directory). SmolLM2: one a-priori value per family, nothing is tuned (documented in its README).

The job list depends on the selection's outcome, which a Hydra cartesian sweep cannot express, so
this script is the grid: it prints, runs (resumably, ``nice``d, N at a time) and reports it.

    python scripts/real_weights.py chunks  minilm_glue            # named chunks, jobs, estimates
    python scripts/real_weights.py list    minilm_glue [CHUNK]    # exact commands + status
    python scripts/real_weights.py run     minilm_glue CHUNK [--jobs 2] [--nice 10] [--methods ft,prompt] [--seeds 110]
    python scripts/real_weights.py report  minilm_glue            # selection, tables, t-tests, summary

``run`` skips complete runs (the entrypoint does too) and resumes interrupted ones from their
step checkpoint; a chunk whose main jobs need a selection that is not complete stops with a clear
message naming the chunk to run first. ``report`` writes everything in results/<grid>/ from the
records found, with cells that have no complete seed shown as ``missing``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from lodabench.errors import ConfigError, LodabenchError  # noqa: E402

SEEDS = (110, 111, 112)
SELECT_SEED = 110


@dataclass(frozen=True)
class Method:
    name: str
    family: str
    extra: tuple[str, ...] = ()        # method-specific overrides (R-LoDA's rank)


@dataclass(frozen=True)
class Grid:
    name: str
    model: str
    runs_dir: str                        # relative to the repo root
    tasks: tuple[str, ...]
    methods: tuple[Method, ...]
    lrs: dict[str, tuple[str, ...]]      # family -> candidate learning rates (strings: they name run dirs)
    representative: dict[str, str]       # family -> the method whose held-out loss picks the lr
    seeds: tuple[int, ...] = SEEDS
    baseline: tuple[str, ...] = ()       # overrides of an untrained reference run (E2E: untuned model)
    metric: dict[str, str] = field(default_factory=dict)  # task -> record metric of the tables

    def experiment(self, task: str) -> str:
        return f"minilm_glue_{task}" if self.name == "minilm_glue" else "smollm2_e2e"

    @property
    def out_dir(self) -> Path:
        return REPO / "results" / self.name


LOWRANK = ("lora", "loda", "condlora", "loda_plus", "dora")  # run order: the headline comparisons first
GRIDS = {
    "minilm_glue": Grid(
        name="minilm_glue", model="minilm-l6", runs_dir="results/minilm_glue/runs",
        tasks=("sst2", "stsb", "cola", "mrpc", "rte"),  # chunk order: cheapest first
        methods=(*(Method(m, "lowrank") for m in LOWRANK), Method("r_loda", "lowrank", ("method.rank=150",)),
                 Method("s_loda", "lowrank"), Method("ft", "ft"), Method("prompt", "prompt")),
        # Two candidates per family (issue #10: "at most 2 values"), chosen on the held-out 10% of train.
        lrs={"lowrank": ("5e-4", "2e-3"), "ft": ("5e-5", "2e-4"), "prompt": ("3e-3", "3e-2")},
        representative={"ft": "ft", "lowrank": "lora", "prompt": "prompt"},
        metric={"rte": "accuracy", "mrpc": "accuracy", "stsb": "pearson", "cola": "mcc",
                "sst2": "accuracy"},
    ),
    "smollm2_e2e": Grid(
        name="smollm2_e2e", model="smollm2-135m", runs_dir="results/smollm2_e2e/runs",
        tasks=("e2e",),
        methods=(*(Method(m, "lowrank") for m in ("lora", "loda", "loda_plus")),
                 Method("r_loda", "lowrank", ("method.rank=225",)), Method("s_loda", "lowrank"),
                 Method("ft", "ft")),
        # One a-priori value per family, not tuned (see results/smollm2_e2e/README.md).
        lrs={"lowrank": ("1e-3",), "ft": ("5e-5",)},
        representative={"lowrank": "lora", "ft": "ft"},
        # LoRA's B = 0 at init: zero training steps = the untuned SmolLM2 with the same prompt format.
        baseline=("method=lora", "trainer.epochs=0", "trainer.lr=1e-3"),
        metric={"e2e": "BLEU"},
    ),
}


# ----------------------------------------------------------------------------------------------
# Jobs and chunks

@dataclass
class Job:
    grid: str
    task: str
    method: str
    family: str
    lr: str | None
    seed: int
    overrides: list[str]
    kind: str                # select | main | baseline
    run_dir: str = ""

    @property
    def record(self) -> dict[str, Any] | None:
        path = REPO / self.run_dir / "record.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except ValueError:
            return None

    @property
    def status(self) -> str:
        rec = self.record
        return "absent" if rec is None else str(rec.get("status") or "running")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "lodabench", *self.overrides]


def _overrides(grid: Grid, task: str, method: Method, lr: str, seed: int) -> list[str]:
    return [f"experiment={grid.experiment(task)}", f"method={method.name}", *method.extra,
            f"trainer.lr={lr}", f"seed={seed}", f"paths.runs_dir={grid.runs_dir}"]


def selection_jobs(grid: Grid, task: str) -> list[Job]:
    """The representative of every family with two candidates, at each candidate, seed 110."""
    jobs = []
    for family, cands in grid.lrs.items():
        if len(cands) < 2:
            continue
        method = next(m for m in grid.methods if m.name == grid.representative[family])
        for lr in cands:
            jobs.append(Job(grid.name, task, method.name, family, lr, SELECT_SEED,
                            _overrides(grid, task, method, lr, SELECT_SEED), "select"))
    return jobs


def chosen_lr(grid: Grid, task: str, family: str) -> tuple[str | None, dict[str, Any]]:
    """The family's lr on this task: its only candidate, or the one with the lower held-out loss."""
    cands = grid.lrs[family]
    if len(cands) == 1:
        return cands[0], {"rule": "single a-priori value (not tuned)", "candidates": list(cands)}
    losses: dict[str, float | None] = {}
    for job in resolve([j for j in selection_jobs(grid, task) if j.family == family]):
        rec = job.record or {}
        dev = ((rec.get("train") or {}).get("dev_loss") or {}) if rec.get("status") == "complete" else {}
        last = dev.get(str(max(map(int, dev)))) if dev else None
        losses[job.lr] = float(last) if isinstance(last, (int, float)) and math.isfinite(last) else None
    info = {"rule": "lower held-out loss (10% of train, last epoch), seed 110, "
                    f"representative {grid.representative[family]}", "candidates": list(cands),
            "heldout_loss": losses}
    if any(v is None for v in losses.values()):
        return None, info
    return min(cands, key=lambda lr: (losses[lr], cands.index(lr))), info


def main_jobs(grid: Grid, task: str) -> list[Job]:
    """Every method x seed at its family's chosen lr (None lr = selection not complete yet)."""
    jobs = []
    for method in grid.methods:
        lr, _ = chosen_lr(grid, task, method.family)
        for seed in grid.seeds:
            ov = _overrides(grid, task, method, lr or "<select first>", seed)
            jobs.append(Job(grid.name, task, method.name, method.family, lr, seed, ov, "main"))
    return jobs


def baseline_jobs(grid: Grid) -> list[Job]:
    if not grid.baseline:
        return []
    return [Job(grid.name, t, "untuned", "baseline", None, SELECT_SEED,
                [f"experiment={grid.experiment(t)}", *grid.baseline, f"seed={SELECT_SEED}",
                 f"paths.runs_dir={grid.runs_dir}"], "baseline") for t in grid.tasks]


def chunks(grid: Grid) -> dict[str, list[Job]]:
    """Named chunks, each sized to finish in one go on this machine (README: budget table)."""
    out: dict[str, list[Job]] = {}
    if grid.name == "minilm_glue":
        for task in grid.tasks:
            out[f"glue-{task}-select"] = selection_jobs(grid, task)
            out[f"glue-{task}"] = main_jobs(grid, task)
    else:
        out["e2e-baseline"] = baseline_jobs(grid)
        for method in grid.methods:
            out[f"e2e-{method.name.replace('_', '-')}"] = [j for j in main_jobs(grid, "e2e") if j.method == method.name]
    return out


def resolve(jobs: list[Job]) -> list[Job]:
    """Fill each job's run directory exactly as the entrypoint derives it (Hydra compose)."""
    import lodabench.config.run_names  # noqa: F401  registers the lb_slug resolver used by run_name
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from lodabench.paths import CONF_DIR

    todo = [j for j in jobs if not j.run_dir and (j.lr is not None or j.kind == "baseline")]
    if not todo:
        return jobs
    from lodabench.plugins import load_plugins
    from lodabench.config.schema import store_schema

    load_plugins()
    store_schema()  # the code-defined options (methods, trainer, decoding beam, ...) as the entrypoint has them
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for job in todo:
            cfg = compose(config_name="config", overrides=job.overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            job.run_dir = str(cfg.run_dir)
    GlobalHydra.instance().clear()
    return jobs


# ----------------------------------------------------------------------------------------------
# Running

def prune(run_dir: Path, method: str) -> None:
    """After a COMPLETE run: drop optimizer states (resume is over); full-FT weights too (100s of MB).

    The adapters' final trainable.safetensors stay on disk (git-ignored) for the subspace analysis.
    """
    ckpt = run_dir / "checkpoints"
    if not ckpt.is_dir():
        return
    if method == "ft":
        shutil.rmtree(ckpt)
        return
    for opt in ckpt.glob("*/optimizer.pt"):
        opt.unlink()


def run_job(job: Job, nice: int, log_dir: Path) -> tuple[Job, int, float]:
    if job.status == "complete":
        return job, 0, 0.0
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / (job.run_dir.replace("/", "__")[-180:] + ".log")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    env.setdefault("LODABENCH_DATA_ROOT", str((REPO.parent / "shared" / "data").resolve()))
    t0 = time.time()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(job.command()[1:]) + "\n")
        fh.flush()
        rc = subprocess.call(["nice", "-n", str(nice), *job.command()], cwd=REPO, stdout=fh,
                             stderr=subprocess.STDOUT, env=env)
    if rc == 0:
        prune(REPO / job.run_dir, job.method)
    return job, rc, time.time() - t0


def cmd_run(grid: Grid, chunk_names: list[str], n_jobs: int, nice: int, log_dir: Path,
            only: set[str] | None = None, seeds: set[int] | None = None) -> int:
    all_chunks = chunks(grid)
    names = list(all_chunks) if chunk_names == ["all"] else chunk_names
    for name in names:
        if name not in all_chunks:
            raise ConfigError(f"chunk {name!r} is not a chunk of grid {grid.name}; chunks: {', '.join(all_chunks)}.")
    failed = 0
    for name in names:
        jobs = chunks(grid)[name]  # recomputed: a selection chunk run just before fixes the lrs
        if only:  # e.g. a second runner on the same chunk, for other methods (never two on one job)
            jobs = [j for j in jobs if j.method in only]
        if seeds:  # e.g. one seed of every method first, the other seeds in a later session
            jobs = [j for j in jobs if j.seed in seeds]
        pending = [j for j in jobs if j.lr is None and j.kind == "main"]
        if pending:
            fams = sorted({j.family for j in pending})
            print(f"[{name}] learning rate of {', '.join(fams)} on {pending[0].task} not selected yet (its "
                  f"selection runs are not all complete): {len(pending)} jobs wait; run chunk "
                  f"glue-{pending[0].task}-select first", file=sys.stderr)
            failed += 1
            jobs = [j for j in jobs if j.lr is not None or j.kind != "main"]
        resolve(jobs)
        todo = [j for j in jobs if j.status != "complete"]
        print(f"[{name}] {len(jobs)} jobs, {len(jobs) - len(todo)} complete, {len(todo)} to run "
              f"({n_jobs} at a time, nice {nice}); logs in {log_dir}", flush=True)
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for job, rc, dt in pool.map(lambda j: run_job(j, nice, log_dir), todo):
                state = "ok" if rc == 0 else f"FAILED rc={rc}"
                failed += rc != 0
                print(f"[{name}] {state} {dt / 60:6.1f} min  {job.run_dir}", flush=True)
        print(f"[{name}] done in {(time.time() - t0) / 60:.1f} min", flush=True)
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------
# Listing

def cmd_list(grid: Grid, chunk: str | None) -> int:
    for name, jobs in chunks(grid).items():
        if chunk and name != chunk:
            continue
        resolve(jobs)
        done = sum(j.status == "complete" for j in jobs)
        print(f"## {name}: {done}/{len(jobs)} complete")
        for j in jobs:
            print(f"  [{j.status if j.run_dir else 'needs selection'}] python -m lodabench {' '.join(j.overrides)}")
    return 0


def cmd_chunks(grid: Grid) -> int:
    for name, jobs in chunks(grid).items():
        resolve(jobs)
        done = sum(j.status == "complete" for j in jobs)
        print(f"{name:24s} {len(jobs):3d} jobs  {done:3d} complete")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for c in ("chunks", "list", "run", "report"):
        s = sub.add_parser(c)
        s.add_argument("grid", choices=sorted(GRIDS))
        if c in ("list", "run"):
            s.add_argument("chunk", nargs="*" if c == "run" else "?", default=None)
        if c == "run":
            s.add_argument("--jobs", type=int, default=2)
            s.add_argument("--nice", type=int, default=10)
            s.add_argument("--log-dir", type=Path, default=Path("/tmp/lodabench_real_logs"))
            s.add_argument("--methods", default=None,
                           help="comma-separated: run only these methods' jobs of the chunk(s)")
            s.add_argument("--seeds", default=None,
                           help="comma-separated: run only these seeds' jobs of the chunk(s)")
    args = p.parse_args()
    grid = GRIDS[args.grid]
    try:
        if args.cmd == "chunks":
            sys.exit(cmd_chunks(grid))
        if args.cmd == "list":
            sys.exit(cmd_list(grid, args.chunk))
        if args.cmd == "run":
            only = set(args.methods.split(",")) if args.methods else None
            seeds = {int(x) for x in args.seeds.split(",")} if args.seeds else None
            sys.exit(cmd_run(grid, args.chunk or ["all"], args.jobs, args.nice, args.log_dir, only, seeds))
        from report_real import report  # scripts/report_real.py: tables, t-tests, summaries
        sys.exit(report(grid, sys.modules[__name__]))
    except LodabenchError as exc:
        print(f"real_weights: error: {exc}", file=sys.stderr)
        sys.exit(2)
