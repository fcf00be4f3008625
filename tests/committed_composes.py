"""Each committed run's command, composed as Hydra composes it today, once per test session.

tests/test_run_identity.py checks that every committed run still composes to the directory it lies
in, tests/test_real_results.py that every committed complete record was made with the values its
command composes to today. Both read the same 169 runs' ``.hydra/overrides.yaml`` and each composed
them all itself (~0.13 s a compose, all inside Hydra: ~22 s of CPU per test). Here the first caller
composes each run once -- its run directory and the resolved values of the result keys -- into the
session's ``session_folder`` as JSON (floats written with ``repr``, so read back to the bit); the
other reads it. Every value is composed afresh each session; each test asserts its own property.
``each_composed`` is the one compose loop of the tests that compose commands as a job (also
test_one_door's golden run identities and test_run_identity's operational keys).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lodabench.paths import CONF_DIR, REPO_ROOT
from lodabench.run.records import RESULT_KEYS


def committed_runs() -> list[Path]:
    """The committed run directories whose Hydra overrides are committed with them."""
    return sorted(p.parent for p in REPO_ROOT.glob("results/*/runs/**/record.json")
                  if (p.parent / ".hydra" / "overrides.yaml").is_file())


def overrides(run_dir: Path) -> list[str]:
    """The command-line overrides Hydra saved for the run (``.hydra/overrides.yaml``)."""
    text = (run_dir / ".hydra" / "overrides.yaml").read_text()
    return [line[2:].strip() for line in text.splitlines() if line.startswith("- ")]


def each_composed(commands: list[list[str]]) -> Iterator[DictConfig]:
    """Each command's config, composed as Hydra composes a job (its Hydra config set, so ``${hydra:...}``
    interpolations such as ``run_dir`` resolve for that command); Hydra is cleared afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from lodabench.config.run_names import register_resolvers
    from lodabench.config.schema import store_schema

    register_resolvers()
    store_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # once for all commands
            for overrides in commands:
                cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)
                yield cfg
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


def _build(folder: Path) -> None:
    runs = committed_runs()
    out = {}
    for cfg, run_dir in zip(each_composed([overrides(d) for d in runs]), runs):  # the generator first: it ends
        values = {k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k]
                  for k in RESULT_KEYS if k in cfg}
        out[str(run_dir.relative_to(REPO_ROOT))] = {"run_dir": str(cfg.run_dir), "values": values}
    (folder / "composes.json").write_text(json.dumps(out), encoding="utf-8")


def composes(session_folder) -> dict[str, dict]:
    """``{run directory relative to the repository: {"run_dir": today's, "values": {result key: ...}}}``."""
    folder = session_folder("committed-composes", _build)
    return json.loads((folder / "composes.json").read_text(encoding="utf-8"))
