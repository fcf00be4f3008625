"""The A/B benches' shared part (bench_keep_freed.py, bench_import_gc.py, bench_launch_commits.py): one CLI launch in a fresh
process with a fresh results directory, timed by ``getrusage`` of the finished child; the two settings
in turn (A B A B ..., so both see the same machine load); medians; the record under results/bench/."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
# A tiny RTE run (tiny-roberta, 4 steps, no JVM: the process's own CPU is what is timed).
TINY_RTE = ["model=tiny-roberta", "data=rte", "method=lora", "data.max_train_examples=32", "data.max_eval_items=16",
            "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "decoding.progress=false"]


def launch(cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> tuple[dict, dict]:
    """(the run's record, the child's wall/user/system seconds and minor page faults); ``cwd`` and
    ``env`` (added to this process's) for a launch of another checkout (bench_launch_commits.py)."""
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        env = {**os.environ, "LODABENCH_RESULTS_DIR": tmp, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", **(env or {})}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (record,) = [json.loads(p.read_text()) for p in Path(tmp).rglob("record.json")]
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return record, {"wall_s": round(wall, 2), "user_s": round(user, 2), "sys_s": round(system, 2),
                    "cpu_s": round(user + system, 2), "minor_faults": after.ru_minflt - before.ru_minflt}


def in_turn(one_run: Callable[[bool], dict], pairs: int) -> list[dict]:
    """``one_run(True)``, ``one_run(False)``, ``pairs`` times."""
    return [one_run(setting) for _ in range(pairs) for setting in (True, False)]


def medians(runs: list[dict], setting: str, keys: tuple[str, ...]) -> dict[bool, dict[str, float]]:
    """Per value of ``run[setting]``: the median of each figure in ``keys``."""
    return {on: {k: round(statistics.median(r[k] for r in runs if r[setting] == on), 3) for k in keys}
            for on in (True, False)}


def one_value(runs: list[dict], key: str) -> list:
    """The one value of ``run[key]`` over all runs, as a list; exits naming the values if they differ."""
    values = sorted({r[key] for r in runs})
    if len(values) != 1:
        raise SystemExit(f"{key} differs between runs: {values}")
    return values


def write_record(name: str, out: dict, markdown: str) -> Path:
    """``results/bench/<UTC time>-cpu-<name>.{json,md}`` (the machine described in the JSON)."""
    from lodabench.machine import machine_info

    stem = REPO / "results" / "bench" / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-cpu-{name}"
    out = {**out, "load_average_after": os.getloadavg(), "machine": machine_info("cpu")}
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return stem
