"""Where things live: the repository, the config tree, the data root and the results directory.

The data root is never committed. It comes from (in order) the config value ``paths.data_root``,
the environment variable ``LODABENCH_DATA_ROOT``, or ``../shared/data`` beside the repository
(the layout of this project's CI machine). With none of them, the loaders read the hub's parquet
files (``lodabench.tasks.hub``), downloaded once into the cache root (``cache_root``).
"""

from __future__ import annotations

import os
from pathlib import Path

from lodabench.errors import DataError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
CONF_DIR = REPO_ROOT / "conf"
DATA_ROOT_ENV = "LODABENCH_DATA_ROOT"
CACHE_ENV = "LODABENCH_CACHE"


def shared_dir() -> Path | None:
    """``../shared`` beside the repository, if present (CI and developer machines)."""
    candidate = REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


def resolve_data_root(configured: str | os.PathLike | None = None) -> Path | None:
    """Return the local data root or None (then loaders fall back to the hub)."""
    for value in (configured, os.environ.get(DATA_ROOT_ENV)):
        if value not in (None, "", "null"):
            root = Path(value).expanduser()
            if not root.is_dir():
                raise DataError(
                    f"data root {str(root)!r} does not exist. Set paths.data_root=<dir> or "
                    f"{DATA_ROOT_ENV}=<dir> to a folder holding e2e/, dart/ and glue/ "
                    "(see README 'Data'), or leave both unset to load from the Hugging Face hub."
                )
            return root.resolve()
    shared = shared_dir()
    if shared is not None and (shared / "data").is_dir():
        return (shared / "data").resolve()
    return None


def cache_root() -> Path:
    """Where lodabench keeps what it downloads (the hub's data files under ``hub/``).

    ``$LODABENCH_CACHE``, else ``$XDG_CACHE_HOME/lodabench``, else ``~/.cache/lodabench`` (the XDG
    base-directory rule, as huggingface_hub's own ``~/.cache/huggingface``). Kept apart from the HF
    cache so that deleting it forgets exactly the data lodabench fetched. Not created here.
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "lodabench").resolve()


def require_file(path: Path, what: str, how_to_get: str) -> Path:
    """Raise a DataError naming the missing file and how to obtain it."""
    if not path.is_file():
        raise DataError(f"{what} not found: {path}. {how_to_get}")
    return path
