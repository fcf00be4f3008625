"""Hydra entrypoint. Config tree: ``conf/`` at the repository root (editable install)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile

import hydra
from omegaconf import DictConfig, OmegaConf

from lodabench.errors import LodabenchError
from lodabench.paths import CONF_DIR
from lodabench.plugins import load_plugins_or_exit
from lodabench.run_names import register_resolvers

log = logging.getLogger("lodabench")


register_resolvers()  # lb_slug, lb_rank0 (run-directory names): before Hydra composes conf/


# Failed jobs of a multirun are appended here (one JSON line each) by whichever process ran them
# (basic, joblib or submitit launcher: all inherit the environment), and summarised by main().
FAILED_JOBS_ENV = "LODABENCH_FAILED_JOBS_FILE"


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    from lodabench.run import RunInterrupted, run
    from lodabench.schema import check_composed
    try:
        check_composed(cfg)  # this job's config (a sweep's values included): no key outside the schema
        metrics = run(cfg)
    except RunInterrupted as exc:
        print(f"lodabench: {exc}; the record says so (status interrupted). Re-run the command to resume.",
              file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except LodabenchError as exc:
        log.error("%s", exc)
        print(f"lodabench: error: {exc}", file=sys.stderr)
        # Under multirun a failing job must not stop the others: Hydra's basic launcher would
        # re-raise, so report and continue; the failed record marks the cell for the tables.
        if _is_multirun():
            _note_failed_job(cfg, exc)
            return None
        raise SystemExit(2)
    except Exception as exc:
        if _is_multirun():
            log.exception("job failed; continuing with the rest of the sweep")
            _note_failed_job(cfg, exc)
            return None
        raise
    return None if metrics is None else metrics.get("objective")


def _note_failed_job(cfg: DictConfig, exc: BaseException) -> None:
    path = os.environ.get(FAILED_JOBS_ENV)
    if path:
        line = json.dumps({"run_dir": str(cfg.run_dir), "error": f"{type(exc).__name__}: {exc}"[:500]})
        with open(path, "a", encoding="utf-8") as fh:  # one short append per job: atomic enough on POSIX
            fh.write(line + "\n")


def _report_failed_jobs(path: str) -> int:
    """Print the failed jobs of a finished multirun; the exit status main() returns (0 or 1)."""
    try:
        jobs = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    except FileNotFoundError:
        return 0
    if not jobs:
        return 0
    print(f"lodabench: {len(jobs)} job(s) of this multirun failed (the others finished):", file=sys.stderr)
    for job in jobs:
        print(f"  - {job['run_dir']}: {job['error']}", file=sys.stderr)
    return 1


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _precheck_results_dir(argv: list[str]) -> None:
    """Fail with one clear line when the results directory cannot be written.

    Hydra creates the run directory (and writes .hydra/ into it) before our code runs, and an
    unwritable location would surface as a Hydra traceback; so the results root named on the
    command line (or by LODABENCH_RESULTS_DIR, else ./results) is probed first.
    """
    import os

    from lodabench.io import check_writable_dir

    value = os.environ.get("LODABENCH_RESULTS_DIR") or "results"
    for arg in argv:
        key, _, val = arg.lstrip("+~").partition("=")
        if key == "paths.results_dir" and val:
            value = val
    if "${" in value or "," in value:  # an interpolation or a sweep: Hydra resolves it
        return
    try:
        check_writable_dir(value)
    except LodabenchError as exc:
        print(f"lodabench: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


_INT = re.compile(r"^-?\d+$")


def _precheck_seed(argv: list[str]) -> None:
    """``seed=abc`` would only fail after Hydra made its ``seedabc/`` run directory: refuse it first."""
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key != "seed" or not value or "(" in value or "${" in value:  # range(...)/choice(...): Hydra checks
            continue
        bad = [v for v in value.split(",") if not _INT.match(v.strip())]
        if bad:
            print(f"lodabench: error: seed={value}: {bad[0]!r} is not an integer. Give an integer seed "
                  "(seed=110) or a comma list to sweep (-m seed=110,111,112).", file=sys.stderr)
            raise SystemExit(2)


def _with_search_space(argv: list[str]) -> list[str]:
    """``hydra/sweeper=optuna``: add the composed config's ``search.space`` (e.g. trainer.lr's range)
    as sweep overrides, and its trials, direction and a seeded sampler, unless the command sets them.

    Why here and not in the overlay's ``hydra.sweeper.params``: Hydra's basic sweeper rejects
    interval() ranges, so an overlay carrying them could no longer be swept over seeds. The sampler
    is seeded with ``seed`` so a re-launch proposes the same trials, which then skip as complete.
    """
    if "hydra/sweeper=optuna" not in argv:
        return argv
    from lodabench.schema import compose

    plain = [a for a in argv if not a.startswith(("-", "hydra", "+hydra", "~hydra"))]
    cfg = compose([a for a in plain if "," not in a])
    search = cfg.search
    space = OmegaConf.to_container(search.space, resolve=True)
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv}
    extra = [f"{k}={v}" for k, v in space.items() if k not in given]
    for key, value in (("hydra.sweeper.n_trials", search.n_trials),
                       ("hydra.sweeper.direction", search.direction),
                       ("hydra.sweeper.sampler.seed", cfg.seed)):
        if value is not None and key not in given:
            extra.append(f"{key}={value}")
    if not space:
        print("lodabench: note: hydra/sweeper=optuna without a search.space in the config; Optuna searches "
              "only what the command line sweeps", file=sys.stderr)
    return [*argv, *extra]


# Flags after which the command does not launch this config (help, another config tree).
_NO_PRECHECK = ("--help", "-h", "--hydra-help", "--info", "-i", "--config-name", "-cn", "--config-path", "-cp",
                "--config-dir", "-cd", "--shell-completion", "-sc", "--version")


def _precheck_config(argv: list[str]) -> None:
    """Compose the command's config before Hydra makes any directory: an unknown key (``+trainer.lrr=1``)
    or a value of the wrong type (``decoding.num_beams=abc``) is one line and exit 2, in seconds.

    A sweep is checked with the first value of each discrete sweep (every job is checked again when
    it starts, with its own values: entry.hydra_main).
    """
    if any(a.split("=", 1)[0] in _NO_PRECHECK for a in argv):
        return
    from hydra.errors import HydraException

    from lodabench.schema import compose

    try:
        compose(_first_job(argv))
    except LodabenchError as exc:
        _exit_config_error(str(exc))
    except HydraException as exc:  # Hydra's message names the override (and lists a group's options); its cause names key and type
        cause = f" ({str(exc.__cause__).splitlines()[0]})" if exc.__cause__ else ""
        first, *rest = str(exc).splitlines()
        _exit_config_error("\n".join([f"{first}{cause}", *rest]).rstrip())


def _first_job(argv: list[str]) -> list[str]:
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = get_args_parser().parse_args(argv)  # Hydra's own command line: flags and their values apart
    overrides = OverridesParser.create().parse_overrides(args.overrides)
    job = []
    for o in overrides:
        if o.key_or_group.startswith("hydra"):
            continue
        if not o.is_sweep_override():
            job.append(o.input_line)
        elif o.is_discrete_sweep():
            job.append(f"{o.input_line.split('=', 1)[0]}={next(o.sweep_string_iterator())}")
    return job


def _exit_config_error(message: str) -> None:
    print(f"lodabench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    load_plugins_or_exit()  # plugin methods and their method/<name> configs exist before Hydra composes
    from lodabench.schema import store_schema
    store_schema()  # the schema and the code-defined group options (methods, tasks) as ConfigStore nodes
    argv = sys.argv[1:]
    _precheck_results_dir(argv)
    _precheck_seed(argv)
    _precheck_config(argv)
    sys.argv = [sys.argv[0], *_with_search_space(argv)]
    fd, failed_jobs = tempfile.mkstemp(prefix="lodabench-failed-jobs-", suffix=".jsonl")
    os.close(fd)
    os.environ[FAILED_JOBS_ENV] = failed_jobs
    try:
        hydra_main()
    finally:
        status = _report_failed_jobs(failed_jobs)
        os.unlink(failed_jobs)
    if status:
        raise SystemExit(status)
