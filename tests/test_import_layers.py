"""The layer order of src/lodabench (issue #28): pyproject.toml's [tool.importlinter] contracts (layers
along the data path, no cycle between siblings) hold, checked by import-linter's own ``lint-imports``, so
`make test` refuses an import pointing back up a layer; and the contract does catch one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")  # the venv's console script (dev extra)


def _lint_imports(root: Path, src: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), (f"{LINT_IMPORTS} is missing. Fix: `make install` (import-linter is in the dev "
                                   "extra and requirements*.lock)")
    env = {**os.environ, "PYTHONPATH": str(src)}  # this tree's lodabench, not the venv's editable install
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_imports_follow_the_layers_and_have_no_cycle():
    proc = _lint_imports(REPO_ROOT, REPO_ROOT / "src")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout[-3000:]


def test_an_import_back_up_a_layer_breaks_the_contract(tmp_path):
    """A registry that reads the run spine (config -> run) is what the contract exists to refuse."""
    shutil.copytree(REPO_ROOT / "src" / "lodabench", tmp_path / "src" / "lodabench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    registry = tmp_path / "src" / "lodabench" / "config" / "registry.py"
    registry.write_text(registry.read_text(encoding="utf-8") + "\nfrom lodabench.run import spine  # noqa\n",
                        encoding="utf-8")
    proc = _lint_imports(tmp_path, tmp_path / "src")
    assert proc.returncode == 1 and "lodabench.config.registry -> lodabench.run.spine" in proc.stdout, proc.stdout[-3000:]
