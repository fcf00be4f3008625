"""Bench (not a test): one CLI refusal as a subprocess (run_cli) vs in this process (run_cli_here).

    PYTHONPATH=src python tests/bench_cli_launch.py [--repeats 5] [--out results/bench/cli_launch.json]

Alternates the two launchers on the same refused command (run_name=.., refused before Hydra makes a
directory) so both see the same machine load; writes the wall times, their medians and ratio, and the
load average before and after. results/bench/test_suite.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runs_helpers import TINY_E2E, assert_refused, run_cli, run_cli_here  # noqa: E402

REFUSED = [*TINY_E2E, "run_name=.."]


def _timed(launch, results: Path) -> float:
    start = time.perf_counter()
    assert_refused(launch(REFUSED, results, check=False), "run_name=")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/bench/cli_launch.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        first_here = _timed(run_cli_here, Path(tmp))  # pays this process's imports once
        times = {"subprocess": [], "in_process": []}
        for _ in range(args.repeats):
            times["subprocess"].append(_timed(run_cli, Path(tmp)))
            times["in_process"].append(_timed(run_cli_here, Path(tmp)))
    medians = {k: statistics.median(v) for k, v in times.items()}
    record = {"command": REFUSED, "repeats": args.repeats, "first_in_process_s": first_here, "times_s": times,
              "median_s": medians, "ratio_subprocess_over_in_process": medians["subprocess"] / medians["in_process"],
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpus": os.cpu_count(),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("median_s", "ratio_subprocess_over_in_process", "loadavg_before")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
