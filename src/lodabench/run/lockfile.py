"""The locks: which one this environment was installed from, its hash (stored in every run record), and
whether the environment matches it.

Two locks since issue #26 (scripts/lock.sh): requirements.lock (CPU torch) and requirements-cuda.lock
(PyPI's CUDA torch). `make install` writes the one it installed into ``<venv>/.lock``; everything here
that takes no path checks against that one, so a CUDA install passes the same checks a CPU one does.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import re
import site
import sys
import sysconfig
from pathlib import Path

from lodabench.paths import REPO_ROOT

CPU_LOCK = REPO_ROOT / "requirements.lock"
CUDA_LOCK = REPO_ROOT / "requirements-cuda.lock"
LOCKS = (CPU_LOCK, CUDA_LOCK)
# The CPU lock kept its old name: README's demo table and tests/test_demo.py name it on purpose.
LOCK = CPU_LOCK
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def installed_lock() -> Path:
    """The lock this environment holds: the name `make install` wrote to ``<venv>/.lock``; without one (a
    venv made before #26, or pip by hand) the lock whose torch pin equals the installed torch, else the
    CPU lock."""
    marker = Path(sys.prefix) / ".lock"
    if marker.is_file():
        return REPO_ROOT / marker.read_text().strip()
    return next((lock for lock in LOCKS if lock.is_file() and _pins_installed_torch(lock)), CPU_LOCK)


def installed_lock_info() -> dict[str, str | None]:
    """``{"name": "requirements.lock", "sha256": ...}`` of the installed lock, for run records."""
    lock = installed_lock()
    return {"name": lock.name, "sha256": lock_sha256(lock)}


def lock_sha256(path: Path | None = None) -> str | None:
    """sha256 of a lock file's bytes (default: the installed lock), or None where the checkout has none."""
    path = path or installed_lock()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def locked_versions(path: Path | None = None) -> dict[str, str]:
    """{normalized name: version} of every `name==version` line (default: the installed lock)."""
    pins = (_PIN.match(line) for line in (path or installed_lock()).read_text().splitlines())
    return {_normalize(m[1]): m[2] for m in pins if m}


def lock_mismatches(path: Path | None = None) -> list[str]:
    """Locked distributions missing here or installed at another version (``"x: locked 1, installed 2"``)."""
    path = path or installed_lock()
    out = []
    for name, want in sorted(locked_versions(path).items()):
        have = _version(name)
        if have != want:
            out.append(f"{name}: locked {want}, installed {have or 'nothing'}")
    extra = _installed() - set(locked_versions(path)) - _NOT_LOCKED
    return out + [f"{name}: installed, not in the lock" for name in sorted(extra)]


def stale_distributions(path: Path) -> list[str]:
    """Installed distributions that `path` does not pin at their installed version: what to uninstall
    before installing `path` into a venv that held another lock. pip alone would keep them: it leaves
    unlisted ones (nvidia-*), and counts torch 2.13.0+cpu as satisfying the CUDA lock's ``torch==2.13.0``
    (PEP 440 ignores a local label the specifier lacks)."""
    pins = locked_versions(path)
    return sorted(name for name in _installed() - _NOT_LOCKED if pins.get(name) != _version(name))


# pip comes with the venv; lodabench is the checkout itself (editable).
_NOT_LOCKED = {"pip", "lodabench"}


def _pins_installed_torch(lock: Path) -> bool:
    return locked_versions(lock).get("torch") == _version("torch")


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _installed() -> set[str]:
    return {_normalize(d.metadata["Name"]) for d in md.distributions(path=_environment_dirs())}


def _environment_dirs() -> list[str]:
    """Where pip installs into this environment: its site-packages (and the user site when Python
    reads it). Not all of sys.path: an imported setuptools appends its ``_vendor`` folder, whose
    dist-info folders (autocommand, jaraco.*, wheel, zipp, ...) are not installed distributions."""
    paths = sysconfig.get_paths()
    dirs = [paths["purelib"], paths["platlib"]] + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    return list(dict.fromkeys(dirs))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
