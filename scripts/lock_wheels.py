"""Summarise the wheels pip installs from a lock, per CPython, as comment lines for the lock's footer.

scripts/lock.sh runs it on uv's pylock.toml export of a lock (``uv pip compile LOCK --no-deps --format
pylock.toml`` per CPython, manylinux_2_28 x86_64): pylock lists, per pin, the files that fit that target,
with their names, which the requirements format lacks. Two facts come out (issue #26): the glibc floor
(the highest, over packages, of the lowest manylinux glibc a package's fitting wheel needs) and the torch
wheel each CPython gets, with its sha256, so tests/test_lock.py checks offline that the lock's hashes
cover every CPython it claims. Usage: lock_wheels.py PYLOCK... (one per CPython, named pylock.<tag>.toml).
"""

import re
import sys
import tomllib

# PEP 600 aliases of the legacy manylinux tags.
LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def glibc(filename: str) -> tuple[int, int] | None:
    """Lowest glibc among a wheel's manylinux tags (a wheel installs where any tag fits), None if pure."""
    tags = filename[:-4].split("-")[-1].split(".")
    found = [LEGACY[t.split("_")[0]] if t.split("_")[0] in LEGACY else tuple(map(int, t.split("_")[1:3]))
             for t in tags if t.startswith("manylinux")]
    return min(found) if found else None


def summary(path: str) -> tuple[tuple[int, int], list[str], list[str], str]:
    """(glibc floor, packages that need it, sdists built locally, the torch wheel + sha256)."""
    packages = tomllib.load(open(path, "rb"))["packages"]
    floors, sdists, torch = {}, [], ""
    for package in packages:
        wheels = [(w["url"].rsplit("/", 1)[1], w["hashes"]["sha256"]) for w in package.get("wheels", [])]
        if not wheels:
            sdists.append(package["name"])
        needs = [glibc(name) or (0, 0) for name, _ in wheels]
        if needs and min(needs) > (0, 0):
            floors[package["name"]] = min(needs)
        torch = next((f"{n} sha256:{h}" for n, h in wheels if package["name"] == "torch"), torch)
    floor = max(floors.values())
    return floor, sorted(n for n, f in floors.items() if f == floor), sdists, torch


def main(paths: list[str]) -> None:
    rows = [(re.search(r"pylock\.(\w+)\.toml$", p).group(1), summary(p)) for p in paths]
    floor = max(r[0] for _, r in rows)
    needing = sorted({n for _, r in rows if r[0] == floor for n in r[1]})
    print("# ---- wheels pip installs on x86_64 Linux (scripts/lock_wheels.py on uv's pylock export) ----")
    print(f"# glibc floor: manylinux_{floor[0]}_{floor[1]} (glibc {floor[0]}.{floor[1]}), set by: {', '.join(needing)}")
    print(f"# built from sdist at install (pure Python): {', '.join(rows[0][1][2]) or 'none'}")
    for tag, (_, _, _, torch) in rows:
        print(f"# torch for {tag}: {torch}")


if __name__ == "__main__":
    main(sys.argv[1:])
