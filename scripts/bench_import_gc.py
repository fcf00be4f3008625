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
import sys

from paired_launches import TINY_RTE, in_turn, launch, medians, one_value, write_record

RUN = TINY_RTE
LAUNCH = {True: [sys.executable, "-m", "lodabench"],
          False: [sys.executable, "-c", "import sys; from lodabench.run.entry import main; "
                                        "sys.argv[0] = 'lodabench'; main()"]}
FIGURES = ("wall_s", "user_s", "sys_s", "cpu_s")


def one_run(paused: bool) -> dict:
    """One CLI run in a fresh process: its wall, CPU and metrics."""
    record, usage = launch([*LAUNCH[paused], *RUN])
    return {"paused": paused, **usage, "metrics": json.dumps(record["metrics"], sort_keys=True)}


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
    runs = in_turn(one_run, args.pairs)
    one_value(runs, "metrics")  # the collector changes no number
    out = {"pairs": args.pairs, "command": RUN, "runs": runs, "median": medians(runs, "paused", FIGURES),
           "metrics_equal": True}
    write_record("import-gc", out, markdown(out))


if __name__ == "__main__":
    main()
