"""Hydra entrypoint. Config tree: ``conf/`` at the repository root (editable install)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from lodabench.errors import LodabenchError
from lodabench.paths import CONF_DIR

log = logging.getLogger("lodabench")


_NUMBER = re.compile(r"(?<=[=,\[])(-?\d+\.?\d*(?:[eE][-+]?\d+)?)(?=[,\]]|$)")


def _canonical_number(match: re.Match) -> str:
    text = match.group(1)
    return repr(float(text)) if any(c in text for c in ".eE") else text


def _slug(override_dirname: str) -> str:
    """A filesystem-safe, deterministic directory name for a set of command-line overrides.

    Float literals are written canonically (``1e-2`` and ``0.01`` both become ``0.01``) because
    Hydra's multirun re-prints non-swept values, and the same settings must land in the same run
    directory whether launched singly or in a sweep (skip/resume depend on it).
    """
    if not override_dirname:
        return "default"
    slug = _NUMBER.sub(_canonical_number, override_dirname).replace("/", "-").replace(" ", "")
    if len(slug) > 120:  # keep paths short; the hash (of the canonical form) keeps distinct overrides distinct
        slug = slug[:100] + "-" + hashlib.sha1(slug.encode()).hexdigest()[:12]
    return slug


def _rank0(value, other=None):
    """``value`` on the main process, ``other`` on the other ranks of a torchrun job, so that
    Hydra's ``.hydra/`` capture and job log are written once, not by every rank."""
    return value if os.environ.get("RANK", "0") == "0" else other


if not OmegaConf.has_resolver("lb_slug"):
    OmegaConf.register_new_resolver("lb_slug", _slug)
if not OmegaConf.has_resolver("lb_rank0"):
    OmegaConf.register_new_resolver("lb_rank0", _rank0)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    from lodabench.run import run
    try:
        metrics = run(cfg)
    except LodabenchError as exc:
        log.error("%s", exc)
        print(f"lodabench: error: {exc}", file=sys.stderr)
        # Under multirun a failing job must not stop the others: Hydra's basic launcher would
        # re-raise, so report and continue; the failed record marks the cell for the tables.
        if _is_multirun():
            return None
        raise SystemExit(2)
    except Exception:
        if _is_multirun():
            log.exception("job failed; continuing with the rest of the sweep")
            return None
        raise
    return None if metrics is None else metrics.get("objective")


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


def main() -> None:
    _precheck_results_dir(sys.argv[1:])
    hydra_main()
