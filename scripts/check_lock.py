"""Fail unless the running environment holds exactly the versions pinned in requirements.lock.

`make install` runs it after installing; tests/test_lock.py asserts the same inside `make test`.
"""

import sys

from lodabench.lockfile import lock_mismatches

if __name__ == "__main__":
    bad = lock_mismatches()
    for line in bad:
        print(f"requirements.lock: {line}", file=sys.stderr)
    if bad:
        sys.exit("installed versions differ from requirements.lock: run `make install` in a fresh .venv "
                 "(rm -rf .venv) or `make lock` if pyproject.toml changed")
    print("installed versions equal requirements.lock")
