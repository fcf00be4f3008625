"""Hydra's capture (``<run_dir>/.hydra/``) and the job log (``<run_dir>/<job>.log``), written by
lodabench once a launch is accepted.

Why not by Hydra: Hydra writes both before any lodabench code runs, so a launch that is then refused
(a config conflict, the lock held by another launch) or skipped (the run is complete) used to rewrite
the run's ``.hydra/`` with a config its record does not hold. conf/hydra/default.yaml therefore
turns both off (``output_subdir: null``, the job log file to /dev/null) and ``run._launch`` calls
``accept_launch`` on rank 0 once it is past every refusal: the files are those Hydra would have
written, with the same names and contents. Outside Hydra (a test calling ``run()``) nothing is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lodabench.io import atomic_write_text

CAPTURE_DIR = ".hydra"
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job_logging default
_JOB_LOG: list[logging.Handler] = []


def _hydra_node() -> DictConfig | None:
    """``{"hydra": ...}`` of the running Hydra job, or None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.instance().cfg if HydraConfig.initialized() else None


def write_capture(run_dir: Path, cfg: DictConfig) -> None:
    """``.hydra/config.yaml`` (the job's config, unresolved), ``hydra.yaml`` and ``overrides.yaml``."""
    node = _hydra_node()
    if node is None:
        return
    out = Path(run_dir) / CAPTURE_DIR
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(out / "hydra.yaml", OmegaConf.to_yaml(node))
    atomic_write_text(out / "overrides.yaml", OmegaConf.to_yaml(node.hydra.overrides.task))


def open_job_log(run_dir: Path) -> None:
    """Append this launch's log records to ``<run_dir>/<job name>.log``, as Hydra's file handler did."""
    node = _hydra_node()
    if node is None:
        return
    close_job_log()
    handler = logging.FileHandler(Path(run_dir) / f"{node.hydra.job.name}.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    _JOB_LOG.append(handler)


def close_job_log() -> None:
    """Detach and close the job log (each job of a multirun opens its own)."""
    while _JOB_LOG:
        handler = _JOB_LOG.pop()
        logging.getLogger().removeHandler(handler)
        handler.close()


def accept_launch(run_dir: Path, cfg: DictConfig) -> None:
    """The launch is accepted (rank 0, lock held, not refused, not skipped): only now write into the run
    directory what Hydra used to write there before lodabench could refuse."""
    write_capture(run_dir, cfg)
    open_job_log(run_dir)
