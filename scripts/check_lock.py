"""Fail unless the running environment holds exactly the versions pinned in the installed lock.

The installed lock is the one `make install` chose (scripts/install_plan.py) and wrote to .venv/.lock:
requirements.lock (CPU) or requirements-cuda.lock. `make install` runs this after installing;
tests/test_lock.py asserts the same inside `make test`.
`--stale LOCK` prints, space-separated, the installed distributions LOCK does not pin at their installed
version: `make install` uninstalls them before it switches the venv to LOCK.
"""

import sys
from pathlib import Path

from lodabench.run.lockfile import installed_lock, lock_mismatches, stale_distributions

if __name__ == "__main__":
    if sys.argv[1:2] == ["--stale"]:
        print(" ".join(stale_distributions(Path(sys.argv[2]))))
        sys.exit(0)
    lock = installed_lock()
    bad = lock_mismatches(lock)
    for line in bad:
        print(f"{lock.name}: {line}", file=sys.stderr)
    if bad:
        sys.exit(f"installed versions differ from {lock.name}: run `make install` in a fresh .venv "
                 "(rm -rf .venv) or `make lock` if pyproject.toml changed")
    print(f"installed versions equal {lock.name}")
