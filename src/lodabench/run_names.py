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


# Hydra joins ``key=value`` items with "," (a value may hold commas: split only before the next key).
_ITEM_SEP = re.compile(r",(?=[+~]*[\w@/-]+(?:\.[\w@/-]+)*=)")
# Keys whose value is not identity when it names a local directory: a copy of the recipe's weights
# (checked against the recipe in preflight: lodabench.models.check_local_weights) or a local mirror of
# the task's hub dataset (`hf download --local-dir`; like paths.data_root, which Hydra excludes). The
# record's ``inputs`` names what was read either way.
LOCAL_COPY_OVERRIDES = ("model.pretrained", "data.hub_id")


def is_local_path(*values: object) -> bool:
    """Whether any value names a local file or directory rather than a hub id (``gpt2-medium``,
    ``org/name``) or a ``pkg://`` location: an absolute, ``./``, ``../`` or ``~`` path, or one that exists."""
    def local(value: object) -> bool:
        if not isinstance(value, str) or not value or "://" in value:
            return False
        return value.startswith(("/", "./", "../", "~")) or os.path.exists(value)
    return any(local(v) for v in values)


def drop_local_copies(override_dirname: str) -> str:
    """``override_dirname`` without ``model.pretrained=<local dir>`` / ``data.hub_id=<local dir>``: a local
    copy of the recipe's weights or data (an offline compute node's /scratch) runs in the recipe's own
    run directory."""
    def keep(item: str) -> bool:
        key, _, value = item.partition("=")
        return not (key.lstrip("+~") in LOCAL_COPY_OVERRIDES and is_local_path(value))
    return ",".join(filter(keep, _ITEM_SEP.split(override_dirname))) if override_dirname else override_dirname


def override_slug(override_dirname: str) -> str:
    """A filesystem-safe, deterministic directory name for a set of command-line overrides.

    Float literals are written canonically (``1e-2`` and ``0.01`` both become ``0.01``) because
    Hydra's multirun re-prints non-swept values, and the same settings must land in the same run
    directory whether launched singly or in a sweep (skip/resume depend on it). A local copy of the
    recipe's weights is left out (``drop_local_copies``); operational keys are left out by Hydra
    (``exclude_keys`` in conf/hydra/default.yaml).
    """
    override_dirname = drop_local_copies(override_dirname)
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
