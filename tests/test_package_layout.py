"""Issue #28's layout limits, kept by a test rather than by review alone: at most 10 modules at the
package root, no source file over 600 lines; and the pre-#28 path ``python -m lodabench.reports``
(issue #31's command) still reaches the reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lodabench

PKG = Path(lodabench.__file__).parent
MAX_ROOT_MODULES = 10  # issue #28: "at most 10 modules at the package root"
MAX_LINES = 600  # issue #28: "no source file over 600 lines"


def root_modules(pkg: Path) -> list[str]:
    return sorted(p.name for p in pkg.glob("*.py"))


def long_files(pkg: Path) -> dict[str, int]:
    return {str(p.relative_to(pkg)): n for p in pkg.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}


def test_the_package_root_holds_at_most_ten_modules():
    assert len(root_modules(PKG)) <= MAX_ROOT_MODULES, root_modules(PKG)


def test_no_source_file_is_over_600_lines():
    assert not long_files(PKG), f"split these (issue #28 limit {MAX_LINES} lines): {long_files(PKG)}"


def test_the_layout_measures_see_a_planted_breach(tmp_path):
    """11 root modules and a 601-line file in a subpackage are both seen (the checks can fail)."""
    for i in range(11):
        (tmp_path / f"m{i}.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big.py").write_text("x = 1\n" * 601)
    assert len(root_modules(tmp_path)) == 11
    assert long_files(tmp_path) == {"sub/big.py": 601}


def test_the_reports_keep_their_old_module_path():
    from lodabench.reports import main
    from lodabench.results import reports
    assert main is reports.main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_python_m_lodabench_reports_runs_the_reports_main():
    proc = subprocess.run([sys.executable, "-m", "lodabench.reports", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--paper" in proc.stdout
