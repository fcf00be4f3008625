"""One launch's cost at an earlier commit and at this checkout, in turn (A B A B ...).

``python -m lodabench RUN`` in a fresh process each time: BASE's package and config tree (a detached git
worktree in a temporary directory, imported through ``PYTHONPATH`` ahead of this checkout's editable
install), then this checkout's, with this venv's packages for both, so the two commits must pin the same
lock (refused otherwise: the difference would be the packages'). RUN is a tiny RTE run (no JVM) or a tiny
E2E run (greedy decoding, the official scorers, METEOR's JVM included). Reported: wall, user and system
seconds of each finished child (``getrusage``), medians, the ratio base / head, and whether the metrics
of all runs are equal. Writes ``results/bench/<UTC time>-cpu-launch-commits-<run>.{json,md}``. Needs the
data root (``../shared/data`` beside the repository, or LODABENCH_DATA_ROOT); ``../shared`` is linked
beside the worktree as well (the E2E run's GPT-2 tokenizer).

    python scripts/bench_launch_commits.py 607f91b --run rte --pairs 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from paired_launches import REPO, TINY_RTE, in_turn, launch, medians, write_record

RUNS = {  # e2e: the tests' tiny E2E run (tests/runs_helpers.TINY_E2E)
    "rte": TINY_RTE,
    "e2e": ["model=tiny-gpt2", "method=lora", "method.r=8", "data.max_train_examples=64", "data.max_eval_items=6",
            "data.eval_split=dev", "trainer.max_steps=6", "trainer.lr=1e-2", "trainer.warmup_steps=0",
            "trainer.batch_size=8", "trainer.checkpoint_every=2", "trainer.max_dev_batches=2", "decoding=greedy",
            "decoding.max_new_tokens=16", "trainer.progress=false", "decoding.progress=false"],
}
FIGURES = ("wall_s", "user_s", "sys_s", "cpu_s")


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def check_same_lock(base: str) -> None:
    """The venv holds this checkout's lock: BASE must pin the same one."""
    if git("diff", "--name-only", base, "--", "requirements.lock", "pyproject.toml"):
        raise SystemExit(f"requirements.lock or pyproject.toml differs between {base} and this checkout: "
                         "this venv cannot stand for both. Pick a base with the same lock.")


def one_run(is_base: bool, run: list[str], worktree: Path) -> dict:
    cwd, env = (worktree, {"PYTHONPATH": str(worktree / "src")}) if is_base else (REPO, {})
    record, usage = launch([sys.executable, "-m", "lodabench", *run], cwd=cwd, env=env)
    return {"base": is_base, **usage, "metrics": json.dumps(record["metrics"], sort_keys=True)}


def markdown(out: dict) -> str:
    base, head = out["median"][True], out["median"][False]
    rows = "\n".join(f"| {k} | {base[k]} | {head[k]} | {base[k] / head[k]:.3f} |" for k in FIGURES if head[k])
    return (f"# One launch at {out['base_commit'][:7]} and at {out['head_commit'][:7]} ({out['pairs']} pairs in turn, "
            f"medians)\n\nCommand: `python -m lodabench {' '.join(out['command'])}`, a fresh process each run"
            f"{' (the checkout had uncommitted changes)' if out['head_dirty'] else ''}.\n\n"
            f"| figure | base {out['base_commit'][:7]} | head {out['head_commit'][:7]} | base / head |\n"
            f"|---|---|---|---|\n{rows}\n\nMetrics of every run equal: {out['metrics_equal']}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the earlier commit (any git revision)")
    parser.add_argument("--run", choices=sorted(RUNS), default="rte")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    base = git("rev-parse", args.base)
    check_same_lock(base)
    with tempfile.TemporaryDirectory(prefix="bench_base_") as tmp:
        worktree = Path(tmp) / "base"
        git("worktree", "add", "--detach", str(worktree), base)
        if (REPO.parent / "shared").is_dir():  # ../shared beside the worktree too (the GPT-2 tokenizer, data)
            (Path(tmp) / "shared").symlink_to(REPO.parent / "shared")
        try:
            runs = in_turn(lambda is_base: one_run(is_base, RUNS[args.run], worktree), args.pairs)
        finally:
            git("worktree", "remove", "--force", str(worktree))
    out = {"pairs": args.pairs, "command": RUNS[args.run], "base_commit": base, "head_commit": git("rev-parse", "HEAD"),
           "head_dirty": bool(git("status", "--porcelain", "--untracked-files=no")), "runs": runs,
           "median": medians(runs, "base", FIGURES), "metrics_equal": len({r["metrics"] for r in runs}) == 1}
    write_record(f"launch-commits-{args.run}", out, markdown(out))


if __name__ == "__main__":
    main()
