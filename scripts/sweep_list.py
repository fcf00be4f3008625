#!/usr/bin/env python
"""Print the jobs of a sweep preset without running anything (a dry run of `-m +sweep=NAME`).

    python scripts/sweep_list.py                      # list the presets in conf/sweep/
    python scripts/sweep_list.py e2e_table1           # its jobs: overrides and run directories
    python scripts/sweep_list.py e2e_table1 trainer.max_steps=2 seed=110   # with extra overrides
    python scripts/sweep_list.py e2e_table1 --status  # also: which run dirs are complete/failed/absent
    python scripts/sweep_list.py optuna [RUNS_DIR]    # the trials of Optuna searches (hydra/sweeper=optuna)

Each job is composed with Hydra's compose API (a missing overlay fails here, naming it) and its
run directory is resolved exactly as `python -m lodabench -m +sweep=NAME ...` resolves it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lodabench.run import sweeps
from lodabench.errors import LodabenchError


def main(argv: list[str]) -> int:
    status = "--status" in argv
    args = [a for a in argv if a != "--status"]
    if not args:
        for name in sweeps.preset_names():
            print(f"{name}: {sweeps.command(name)}")
        return 0
    name, extra = args[0], args[1:]
    if name == "optuna":
        return print_trials(Path(extra[0]) if extra else None)
    jobs = sweeps.expand(name, extra)
    print(f"# {len(jobs)} jobs, {len({j.row_dir for j in jobs})} table rows")
    print(f"# run:            {sweeps.command(name, extra)}")
    print(f"# same, explicit: {sweeps.explicit_command(name, extra)}")
    for i, job in enumerate(jobs):
        line = f"#{i:<3} {' '.join(job.overrides):<70} {job.run_dir}"
        if status:
            rec = Path(job.run_dir) / "record.json"
            state = json.loads(rec.read_text()).get("status", "?") if rec.is_file() else "absent"
            line += f"  [{state}]"
        print(line)
    return 0


def print_trials(runs_dir: Path | None) -> int:
    """Every run launched by an Optuna sweep, grouped by study (the command minus the searched keys)."""
    import os

    root = runs_dir or Path(os.environ.get("LODABENCH_RESULTS_DIR") or "results") / "runs"
    trials = sweeps.optuna_trials(root)
    if not trials:
        print(f"# no Optuna trials under {root}")
        return 0
    for study, rows in trials.items():
        print(f"# study: {study}")
        for t in rows:
            params = " ".join(f"{k}={v}" for k, v in t["params"].items())
            print(f"  trial {t['trial']!s:<3} {params:<40} {t['objective_metric'] or ''}={t['objective']!s:<10} "
                  f"[{t['status']}] {t['run_dir']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except LodabenchError as exc:
        print(f"sweep_list: error: {exc}", file=sys.stderr)
        sys.exit(2)
