"""The command's door (``python -m lodabench``): plugins loaded, the config checked from the command
line before Hydra makes any directory, then Hydra launched on ``spine.job``, which every job runs.
Config tree: ``conf/`` at the repository root (editable install).

Nothing here reads a job's composed config: the first code a job's values reach is ``spine.job``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import hydra
from omegaconf import DictConfig, OmegaConf

from lodabench.errors import LodabenchError
from lodabench.paths import CONF_DIR
from lodabench.config.plugin_loader import load_plugins_or_exit
from lodabench.config.run_names import register_resolvers

register_resolvers()  # lb_slug, lb_rank0 (run-directory names): before Hydra composes conf/


def hydra_main(task) -> None:
    """Hand the command line to Hydra: it composes each job's config and calls ``task`` on it
    (spine.job; the launcher runs a sweep's jobs)."""
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()


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
    from lodabench.config.schema import compose

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


# Flags after which the command does not launch this config: Hydra prints or completes and exits
# without composing a job, or another config tree is named.
_NO_PRECHECK = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "--version",
                "--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd")


def _precheck_job(argv: list[str]) -> None:
    """Compose the command's first job as Hydra will, once, before Hydra makes any directory, and refuse
    in one line (exit 2, in seconds): an unknown key (``+trainer.lrr=1``), a value of the wrong type
    (``decoding.num_beams=abc``), a run name or path that leaves paths.results_dir (``..``, empty,
    absolute, a symlink out, over 255 bytes a component) or Hydra directories outside it.

    A sweep is checked with the first value of each discrete sweep; every value a sweep gives a
    location key is checked as text (_check_swept_locations), and every job is checked again when
    it starts, with its own values (spine.job, and the resolvers that give Hydra its job directory:
    conf/hydra/default.yaml).
    """
    if any(a.split("=", 1)[0] in _NO_PRECHECK for a in argv):
        return
    from hydra.errors import HydraException

    from lodabench.config.schema import check_composed, compose

    try:
        cfg = _compose_with_hydra(argv)
        if cfg is None:  # again without the hydra overrides, for the error in our words (one that
            compose(_first_job(argv))  # lies in a hydra override alone is Hydra's to report)
        else:
            check_composed(cfg)
        _check_swept_locations(argv)
        if cfg is not None:
            _check_job_locations(cfg, multirun=bool({"-m", "--multirun"} & set(argv)))
    except LodabenchError as exc:
        _exit_config_error(str(exc))
    except HydraException as exc:  # Hydra's message names the override (and lists a group's options); its cause names key and type
        cause = f" ({str(exc.__cause__).splitlines()[0]})" if exc.__cause__ else ""
        first, *rest = str(exc).splitlines()
        _exit_config_error("\n".join([f"{first}{cause}", *rest]).rstrip())


def _first_job(argv: list[str], keep_hydra: bool = False) -> list[str]:
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = get_args_parser().parse_args(argv)  # Hydra's own command line: flags and their values apart
    overrides = OverridesParser.create().parse_overrides(args.overrides)
    job = []
    for o in overrides:
        if o.key_or_group.startswith("hydra") and not keep_hydra:
            continue
        if not o.is_sweep_override():
            job.append(o.input_line)
        elif o.is_discrete_sweep():
            job.append(f"{o.input_line.split('=', 1)[0]}={next(o.sweep_string_iterator())}")
    return job


# Keys that name where a run writes: every value a sweep gives them is checked before Hydra starts.
_LOCATION_KEYS = {"run_name": "name", "run_dir": "path", "paths.results_dir": "path", "paths.runs_dir": "path"}


def _check_swept_locations(argv: list[str]) -> None:
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lodabench.config.run_names import check_path_text, check_run_name

    overrides = OverridesParser.create().parse_overrides(get_args_parser().parse_args(argv).overrides)
    for o in overrides:
        kind = _LOCATION_KEYS.get(o.key_or_group)
        values = list(o.sweep_iterator()) if o.is_discrete_sweep() else [o.value()]
        for value in map(str, values) if kind else []:
            if "${" not in value:
                check_run_name(value) if kind == "name" else check_path_text(value, o.key_or_group)


def _compose_with_hydra(argv: list[str]) -> DictConfig | None:
    """The first job's config with its ``hydra`` node, as Hydra will compose it (None on any error:
    _precheck_job composes again for the error in our words)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=_first_job(argv, keep_hydra=True), return_hydra_config=True)
    except Exception:  # noqa: BLE001  _precheck_job (or Hydra) reports it with its own words
        return None
    finally:
        GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)  # ${hydra:job.override_dirname} in run_name
    return cfg


def _check_job_locations(cfg: DictConfig, multirun: bool) -> None:
    from lodabench.config.run_names import check_run_dir

    check_run_dir(cfg)
    results = _resolved(cfg, "paths.results_dir")
    for key, path in _hydra_write_paths(cfg, multirun):
        _check_inside(key, path, results)


def _hydra_write_paths(cfg: DictConfig, multirun: bool) -> list[tuple[str, str]]:
    """Where Hydra itself creates directories or files for this job."""
    hydra = cfg.hydra
    job_dir = (os.path.join(_resolved(cfg, "hydra.sweep.dir"), _resolved(cfg, "hydra.sweep.subdir") or "")
               if multirun else _resolved(cfg, "hydra.run.dir"))
    found = [("hydra.sweep.dir" if multirun else "hydra.run.dir", job_dir)]
    if multirun:
        found.append(("hydra.sweep.dir", _resolved(cfg, "hydra.sweep.dir")))
    if hydra.output_subdir is not None:
        found.append(("hydra.output_subdir", os.path.join(job_dir or "", str(hydra.output_subdir))))
    log_file = _resolved(cfg, "hydra.job_logging.handlers.file.filename")
    if log_file and log_file != os.devnull:
        found.append(("hydra.job_logging.handlers.file.filename", os.path.dirname(log_file)))
    folder = _resolved(cfg, "hydra.launcher.submitit_folder")
    if folder:
        found.append(("hydra.launcher.submitit_folder", os.path.dirname(folder)))
    return [(key, path) for key, path in found if path]


def _resolved(cfg: DictConfig, key: str) -> str | None:
    """``key``'s value, or None where it is unset or cannot be resolved before the job runs
    (``${hydra.job.num}``); a resolver's refusal (a ConfigError) is raised as itself."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, LodabenchError):
            raise cause from None
        return None
    return None if value is None else str(value)


def _check_inside(key: str, path: str, results_dir: str | None) -> None:
    from lodabench.errors import ConfigError
    from lodabench.config.run_names import _real

    real, root = _real(path), _real(results_dir or "results")
    if real != root and root not in real.parents:
        raise ConfigError(f"{key} puts Hydra's output at {path} ({real}), outside paths.results_dir={results_dir} "
                          f"({root}); lodabench writes nothing outside paths.results_dir. Fix: drop the {key} "
                          "override (conf/hydra/default.yaml keeps Hydra's files in the run directory).")


def _exit_config_error(message: str) -> None:
    print(f"lodabench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    load_plugins_or_exit()  # plugin methods and their method/<name> configs exist before Hydra composes
    from lodabench.config.schema import store_schema
    store_schema()  # the schema and the code-defined group options (methods, tasks) as ConfigStore nodes
    argv = sys.argv[1:]
    _precheck_results_dir(argv)
    _precheck_seed(argv)
    _precheck_job(argv)
    sys.argv = [sys.argv[0], *_with_search_space(argv)]
    from lodabench.run import spine  # what every job runs: imported before the settle
    from lodabench.machine import settle_import_heap
    # End __main__'s collector pause here, past the prechecks and before Hydra launches, not in the
    # job: a sweep's own process must collect again when its jobs run elsewhere (joblib, submitit).
    settle_import_heap()
    fd, failed_jobs = tempfile.mkstemp(prefix="lodabench-failed-jobs-", suffix=".jsonl")
    os.close(fd)
    os.environ[spine.FAILED_JOBS_ENV] = failed_jobs
    try:
        hydra_main(spine.job)
    finally:
        status = _report_failed_jobs(failed_jobs)
        os.unlink(failed_jobs)
    if status:
        raise SystemExit(status)
