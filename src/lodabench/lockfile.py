"""requirements.lock: its hash (stored in every run record) and whether this environment matches it."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import re
from pathlib import Path

from lodabench.paths import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def lock_sha256(path: Path = LOCK) -> str | None:
    """sha256 of the lock file's bytes, or None where the checkout has none (an installed wheel)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def locked_versions(path: Path = LOCK) -> dict[str, str]:
    """{normalized name: version} of every `name==version` line."""
    pins = (_PIN.match(line) for line in path.read_text().splitlines())
    return {_normalize(m[1]): m[2] for m in pins if m}


def lock_mismatches(path: Path = LOCK) -> list[str]:
    """Locked distributions missing here or installed at another version (``"x: locked 1, installed 2"``)."""
    out = []
    for name, want in sorted(locked_versions(path).items()):
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have != want:
            out.append(f"{name}: locked {want}, installed {have or 'nothing'}")
    extra = _installed() - set(locked_versions(path)) - _NOT_LOCKED
    return out + [f"{name}: installed, not in the lock" for name in sorted(extra)]


# pip comes with the venv; lodabench is the checkout itself (editable).
_NOT_LOCKED = {"pip", "lodabench"}


def _installed() -> set[str]:
    return {_normalize(d.metadata["Name"]) for d in md.distributions()}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
