"""Run-directory names, and the OmegaConf resolvers that build them from a Hydra config.

``conf/config.yaml`` names a run ``${data.name}/${model.name}/${method.name}/${lb_slug:...}/seed${seed}``
and ``conf/hydra/default.yaml`` writes Hydra's own files on rank 0 only (``${lb_rank0:...}``).
Importing this module registers both resolvers; lodabench.entry imports it before Hydra composes,
and so does any tool that resolves ``run_name`` outside a run (sweeps, scripts, tests).
"""

from __future__ import annotations

import hashlib
import os
import re

from omegaconf import OmegaConf

_NUMBER = re.compile(r"(?<=[=,\[])(-?\d+\.?\d*(?:[eE][-+]?\d+)?)(?=[,\]]|$)")


def _canonical_number(match: re.Match) -> str:
    text = match.group(1)
    return repr(float(text)) if any(c in text for c in ".eE") else text


def override_slug(override_dirname: str) -> str:
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


def on_rank0(value, other=None):
    """``value`` on the main process, ``other`` on the other ranks of a torchrun job, so that
    Hydra's ``.hydra/`` capture and job log are written once, not by every rank."""
    return value if os.environ.get("RANK", "0") == "0" else other


def register_resolvers() -> None:
    """``lb_slug`` and ``lb_rank0`` for the config tree (idempotent)."""
    if not OmegaConf.has_resolver("lb_slug"):
        OmegaConf.register_new_resolver("lb_slug", override_slug)
    if not OmegaConf.has_resolver("lb_rank0"):
        OmegaConf.register_new_resolver("lb_rank0", on_rank0)


register_resolvers()
