"""Named sweep presets (``conf/sweep/<name>.yaml``): expand them into the exact job list.

A preset is a ``# @package _global_`` config that only sets ``hydra.sweeper.params`` (Hydra's
basic sweeper reads it), so

    python -m lodabench -m +sweep=e2e_table1

runs the cartesian product of its parameters (e.g. every Table-1 experiment overlay x seeds
110,111,112). ``expand(name)`` computes the same product WITHOUT running anything, composes each
job with Hydra's compose API (so a missing overlay or a bad key fails here, with its name) and
resolves the job's run directory exactly as the run would. ``scripts/sweep_list.py`` prints it;
``lodabench tables --sweep NAME`` uses it to show the rows that have no run yet as missing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lodabench.errors import ConfigError
from lodabench.paths import CONF_DIR


@dataclass(frozen=True)
class Job:
    overrides: tuple[str, ...]      # what Hydra passes to the job (preset first, then sweep values)
    run_name: str                   # <data>/<model>/<method>/<overrides-slug>/seed<seed>, relative to runs_dir
    run_dir: str                    # as the run resolves it (paths.runs_dir/run_name)
    data: str
    model: str
    method: dict[str, Any] = field(hash=False, compare=False)
    seed: int = 0

    @property
    def row_dir(self) -> str:
        """The run directory without the seed component: one table row (all seeds of a setting)."""
        return self.run_name.rsplit("/", 1)[0]


def preset_names(conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / "sweep").glob("*.yaml"))


def preset_params(name: str, conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """``hydra.sweeper.params`` of ``conf/sweep/<name>.yaml`` as {key: "v1,v2,..."} strings."""
    path = conf_dir / "sweep" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"sweep preset {name!r} not found: {path}. Available presets: "
                          f"{', '.join(preset_names(conf_dir)) or '(none)'}.")
    node = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params")
    if not node:
        raise ConfigError(f"{path}: no hydra.sweeper.params; a sweep preset must set it "
                          "(e.g. experiment: e2e_lora,e2e_loda and seed: 110,111,112).")
    return {str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in node.items()}


def expand_params(params: dict[str, str], extra: Sequence[str] = ()) -> list[list[str]]:
    """Cartesian product of sweep parameters as override lists, in Hydra's basic-sweeper order.

    ``extra`` are command-line overrides; a key given there replaces the preset's values (as on
    the Hydra command line, where command-line sweeps win over ``hydra.sweeper.params``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    merged: dict[str, str] = dict(params)
    for line in extra:
        if "=" not in line:
            raise ConfigError(f"override {line!r} is not key=value (e.g. seed=110,111 or trainer.max_steps=2).")
        key, value = line.split("=", 1)
        merged[key] = value
    axes: list[list[str]] = []
    for key, value in merged.items():
        ov = parser.parse_override(f"{key}={value}")
        if ov.is_sweep_override():
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([f"{key}={value}"])
    return [list(combo) for combo in itertools.product(*axes)]


def expand(name: str, extra: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> list[Job]:
    """The jobs ``python -m lodabench -m +sweep=<name> [extra]`` would run, composed and resolved."""
    import lodabench.config.run_names  # noqa: F401  registers the lb_slug resolver used by run_name
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    combos = expand_params(preset_params(name, conf_dir), extra)
    jobs: list[Job] = []
    from lodabench.config.plugin_loader import load_plugins
    from lodabench.config.schema import store_schema

    load_plugins()
    store_schema()  # the code-defined options (methods, trainer, decoding beam, ...) as the entrypoint has them
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base="1.3"):
        for combo in combos:
            overrides = [*combo, f"+sweep={name}"]
            try:
                cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
            except HydraException as exc:
                raise ConfigError(f"sweep {name!r}: job {' '.join(overrides)} does not compose: {exc}. "
                                  f"Fix conf/sweep/{name}.yaml or add the missing config file.") from exc
            HydraConfig.instance().set_config(cfg)
            jobs.append(Job(overrides=tuple(overrides), run_name=str(cfg.run_name), run_dir=str(cfg.run_dir),
                            data=str(cfg.data.name), model=str(cfg.model.name),
                            method=OmegaConf.to_container(cfg.method, resolve=True), seed=int(cfg.seed)))
    GlobalHydra.instance().clear()
    return jobs


def command(name: str, extra: Sequence[str] = ()) -> str:
    return " ".join(["python -m lodabench -m", f"+sweep={name}", *extra])


def explicit_command(name: str, extra: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> str:
    """The same sweep written out as plain multirun overrides (no preset)."""
    params = preset_params(name, conf_dir)
    for line in extra:
        key, value = line.split("=", 1)
        params[key] = value
    return " ".join(["python -m lodabench -m", *(f"'{k}={v}'" if " " in v else f"{k}={v}" for k, v in params.items())])


def optuna_trials(runs_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Runs launched by ``hydra/sweeper=optuna`` (their record's ``sweep``), grouped by study: the
    searched keys' values, the objective, the status and the run dir, in trial order."""
    from lodabench.io import read_json

    studies: dict[str, list[dict[str, Any]]] = {}
    for rec_path in sorted(Path(runs_dir).rglob("record.json")):
        rec = read_json(rec_path)
        sweep = rec.get("sweep") or {}
        if sweep.get("sweeper") != "optuna":
            continue
        metrics = rec.get("metrics") or {}
        studies.setdefault(sweep.get("study", "?"), []).append({
            "trial": sweep.get("trial"), "params": {k: OmegaConf.select(OmegaConf.create(rec["config"]), k)
                                                    for k in sweep.get("searched", [])},
            "objective": metrics.get("objective"), "objective_metric": metrics.get("objective_metric"),
            "status": rec.get("status"), "run_dir": str(rec_path.parent)})
    for rows in studies.values():
        rows.sort(key=lambda t: (t["trial"] is None, t["trial"]))
    return studies
