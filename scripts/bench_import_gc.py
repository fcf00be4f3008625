"""The collector pause of ``python -m lodabench`` (lodabench/__main__.py) on vs off, in turn (A B A B ...).

A: ``python -m lodabench RUN``: the collector is off while the modules are imported, then the imports'
objects are frozen (lodabench.machine.settle_import_heap). B: the same entry called without that pause
(``python -c "...from lodabench.run.entry import main; main()"``), as every launch ran before it.
RUN is a tiny RTE run (tiny-roberta, 4 steps, no JVM, so the process's own CPU is what is timed). Each
run is a fresh process with a fresh results directory; reported: wall, user and system seconds of the
finished child (``getrusage``), medians and the ratio off / on; every run's metrics must be equal (the
collector frees only unreachable cycles: it changes no number). Writes
``results/bench/<UTC time>-cpu-import-gc.{json,md}``. Needs the data root (``../shared/data`` beside
the repository, or LODABENCH_DATA_ROOT).

    python scripts/bench_import_gc.py --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = ["model=tiny-roberta", "data=rte", "method=lora", "data.max_train_examples=32", "data.max_eval_items=16",
       "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "decoding.progress=false"]
LAUNCH = {True: [sys.executable, "-m", "lodabench"],
          False: [sys.executable, "-c", "import sys; from lodabench.run.entry import main; "
                                        "sys.argv[0] = 'lodabench'; main()"]}


def one_run(paused: bool) -> dict:
    """One CLI run in a fresh process: its wall, CPU and metrics."""
    with tempfile.TemporaryDirectory(prefix="bench_import_gc_") as tmp:
        env = {**os.environ, "LODABENCH_RESULTS_DIR": tmp, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([*LAUNCH[paused], *RUN], cwd=REPO, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (record,) = [json.loads(p.read_text()) for p in Path(tmp).rglob("record.json")]
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"paused": paused, "wall_s": round(wall, 2), "user_s": round(user, 2), "sys_s": round(system, 2),
            "cpu_s": round(user + system, 2), "metrics": json.dumps(record["metrics"], sort_keys=True)}


def summary(runs: list[dict]) -> dict:
    keys = ("wall_s", "user_s", "sys_s", "cpu_s")
    return {paused: {k: round(statistics.median(r[k] for r in runs if r["paused"] == paused), 2) for k in keys}
            for paused in (True, False)}


def markdown(out: dict) -> str:
    on, off = out["median"][True], out["median"][False]
    rows = "\n".join(f"| {k} | {off[k]} | {on[k]} | {off[k] / on[k]:.3f} |" for k in on if on[k])
    return (f"# The collector pause at import: off vs on ({out['pairs']} pairs, medians)\n\n"
            f"Command: `python -m lodabench {' '.join(RUN)}` (on) and the same entry without the pause (off),\n"
            f"each run a fresh process.\n\n"
            f"| figure | off (collector on throughout) | on (paused, then frozen) | off / on |\n|---|---|---|---|\n"
            f"{rows}\n\nMetrics of every run equal: {out['metrics_equal']}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run(paused) for _ in range(args.pairs) for paused in (True, False)]
    if len({r["metrics"] for r in runs}) != 1:
        raise SystemExit(f"the metrics differ between runs: {sorted({r['metrics'] for r in runs})}")
    from lodabench.machine import machine_info
    out = {"pairs": args.pairs, "command": RUN, "runs": runs, "median": summary(runs), "metrics_equal": True,
           "load_average_after": os.getloadavg(), "machine": machine_info("cpu")}
    stem = REPO / "results" / "bench" / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-cpu-import-gc"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))


if __name__ == "__main__":
    main()
