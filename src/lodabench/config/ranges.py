"""Numeric domains of config values: declared on each dataclass field, checked before anything loads.

A field's domain lives beside its default and help text, as field metadata::

    label_smoothing: float = hp(0.1, "LoRA Table 11: label smooth 0.1", rng("[0, 1)"))
    bottleneck: int = field(default=64, metadata={"help": "...", DOMAIN: rng("[1, inf)")})

so a new numeric field states its domain where it is declared, and tests/test_ranges.py fails for
one that does not. Every domain is finite: NaN and +-inf are outside all of them. preflight checks
the typed run config (``check_tree``: every group's dataclass) and refuses an out-of-domain value
with the full key (``trainer.label_smoothing``), the value, the allowed range and the default,
before any model loads; ``typed.build_config`` applies the same check to configs built from code.
Kept free of torch (data configs import it).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import Any

from lodabench.errors import ConfigError

DOMAIN = "domain"  # the field-metadata key

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^\]\)\s]+)\s*([\])])\s*$")


@dataclass(frozen=True)
class Domain:
    """A finite interval; ``None`` bound = unbounded on that side (the value must still be finite)."""

    lo: float | None
    hi: float | None
    lo_open: bool
    hi_open: bool
    spec: str  # as written, e.g. "[0, 1)": the text errors show

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)

    def wanted(self, integer: bool) -> str:
        """What a value must be, in words: 'an integer >= 1', 'a finite number > 0', 'a value in [0, 1)'."""
        kind = "an integer" if integer else "a finite number"
        if self.lo is not None and self.hi is not None:
            return f"{'an integer' if integer else 'a value'} in {self.spec}"
        if self.lo is not None:
            return f"{kind} {'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{kind} {'<' if self.hi_open else '<='} {_num(self.hi)}"
        return kind


def rng(spec: str) -> Domain:
    """The domain written as an interval: ``"[0, 1)"``, ``"(0, inf)"``, ``"[1, inf)"``, ``"(-inf, inf)"``.

    Why a string: it reads like the maths it states, and errors quote it unchanged.
    """
    m = _INTERVAL.match(spec)
    if m is None:
        raise ValueError(f"rng({spec!r}): write an interval such as '[0, 1)' or '(0, inf)'")
    lo, hi = _bound(m.group(2)), _bound(m.group(3))
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"rng({spec!r}): the lower bound exceeds the upper one")
    return Domain(lo, hi, m.group(1) == "(", m.group(4) == ")", f"{m.group(1)}{m.group(2)}, {m.group(3)}{m.group(4)}")


def _bound(text: str) -> float | None:
    value = float(text)
    return None if math.isinf(value) else value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


# ------------------------------------------------------------------------------------ checking
def check_value(key: str, value: Any, domain: Domain, integer: bool, default: Any = None) -> None:
    """Refuse ``value`` outside ``domain`` naming ``key``; a list is checked element by element.

    Values of another type (a string, a bool, null) are left to the type checks, which name them.
    """
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        for i, item in enumerate(value):
            check_value(f"{key}[{i}]", item, domain, integer, None)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or domain.contains(value):
        return
    wanted = domain.wanted(integer)
    must = {"an integer >= 1": "be a positive integer"}.get(wanted, f"be {wanted}")
    must = f"lie in {domain.spec}" if wanted.startswith("a value in") else must
    hint = "" if default is None or isinstance(default, (list, tuple)) else f" (default {default!r})"
    raise ConfigError(f"{key}={value!r}: must {must}. Fix: set {key} to {wanted}{hint}")


def check_fields(cls: type, values: Any, prefix: str, only: Any = None) -> None:
    """Check every field of dataclass ``cls`` that declares a domain against ``values`` (a mapping);
    ``only``: just these field names."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        domain = f.metadata.get(DOMAIN)
        if domain is None or not _has(values, f.name) or (only is not None and f.name not in only):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        check_value(f"{prefix}{f.name}", values.get(f.name), domain, _is_int(hints.get(f.name)), default)


def check_tree(config: Any, prefix: str = "") -> None:
    """Every field of a typed config (``schema.run_config``'s RunConfig) and of each group dataclass
    inside it against its domain, naming the full key (``method.r``, ``trainer.lr``)."""
    check_fields(type(config), vars(config), prefix)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_tree(value, f"{prefix}{f.name}.")


def _has(values: Any, name: str) -> bool:
    try:
        return name in values
    except TypeError:
        return False


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


# ------------------------------------------------------------------------------- numeric fields
def _scalar(tp: Any) -> Any:
    """``X`` of ``Optional[X]`` / ``X | None``, the element type of ``list[X]`` / ``tuple[X, ...]``, else ``tp``."""
    args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
    origin = typing.get_origin(tp)
    if origin in (list, tuple) and len(args) == 1:
        return _scalar(args[0])
    if origin is not None and origin not in (list, tuple, dict) and len(args) == 1:  # Union with None
        return _scalar(args[0])
    return tp


def _is_int(tp: Any) -> bool:
    return _scalar(tp) is int


def is_numeric(tp: Any) -> bool:
    """Whether a field of annotation ``tp`` holds numbers (int or float, optional, or a list of them)."""
    return _scalar(tp) in (int, float)


def numeric_fields(cls: type) -> list[str]:
    hints = _hints(cls)
    return [f.name for f in dataclasses.fields(cls) if is_numeric(hints.get(f.name))]


def missing_domains(cls: type) -> list[str]:
    """The numeric fields of ``cls`` that declare no domain (tests/test_ranges.py requires none)."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    return [n for n in numeric_fields(cls) if DOMAIN not in by_name[n].metadata]


__all__ = ["DOMAIN", "Domain", "check_fields", "check_tree", "check_value", "is_numeric", "missing_domains", "numeric_fields",
           "rng"]
