"""Run-directory names, and the OmegaConf resolvers that build them from a Hydra config.

``conf/config.yaml`` names a run ``${data.name}/${model.name}/${method.name}/${lb_slug:...}/seed${seed}``
(values spelt as Hydra's sweeps print them, so a single run and a sweep share a directory), and
``conf/hydra/default.yaml`` gives Hydra the run directory through ``lb_run_dir`` / ``lb_run_name``,
which refuse a name that leaves ``paths.runs_dir`` or ``paths.results_dir`` (the confinement checks
below). Importing this module registers the resolvers; lodabench.run.entry imports it before Hydra
composes, and so does any tool that resolves ``run_name`` outside a run (sweeps, scripts, tests).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from omegaconf import OmegaConf

from lodabench.errors import ConfigError

# The numbers the slug spelt canonically before values were re-printed as Hydra's sweeps print them
# (kept for the values Hydra's parser cannot take apart, e.g. a list that mixes strings and numbers).
_NUMBER = re.compile(r"(?<=[=,\[])(-?\d+\.?\d*(?:[eE][-+]?\d+)?)(?=[,\]]|$)")


def _canonical_number(match: re.Match) -> str:
    text = match.group(1)
    return repr(float(text)) if any(c in text for c in ".eE") else text


# Hydra joins ``key=value`` items with "," (a value may hold commas: split only before the next key).
_ITEM_SEP = re.compile(r",(?=[+~]*[\w@/-]+(?:\.[\w@/-]+)*=)")
# Keys whose value is not identity when it names a local directory: a copy of the recipe's weights
# (checked against the recipe in preflight: lodabench.models.local_weights.check_local_weights) or a local mirror of
# the task's hub dataset (`hf download --local-dir`; like paths.data_root, which Hydra excludes). The
# record's ``inputs`` names what was read either way.
LOCAL_COPY_OVERRIDES = ("model.pretrained", "data.hub_id")


def is_local_path(*values: object) -> bool:
    """Whether any value names a local file or directory rather than a hub id (``gpt2-medium``,
    ``org/name``) or a ``pkg://`` location: an absolute, ``./``, ``../`` or ``~`` path, or one that exists."""
    def local(value: object) -> bool:
        if not isinstance(value, str) or not value or "://" in value:
            return False
        return value.startswith(("/", "./", "../", "~")) or os.path.exists(value)
    return any(local(v) for v in values)


def drop_local_copies(override_dirname: str) -> str:
    """``override_dirname`` without ``model.pretrained=<local dir>`` / ``data.hub_id=<local dir>``: a local
    copy of the recipe's weights or data (an offline compute node's /scratch) runs in the recipe's own
    run directory."""
    def keep(item: str) -> bool:
        key, _, value = item.partition("=")
        return not (key.lstrip("+~") in LOCAL_COPY_OVERRIDES and is_local_path(value))
    return ",".join(filter(keep, _ITEM_SEP.split(override_dirname))) if override_dirname else override_dirname


def override_slug(override_dirname: str) -> str:
    """A filesystem-safe, deterministic directory name for a set of command-line overrides.

    Values are spelt as Hydra's multirun re-prints them (``canonical_overrides``: ``.0002``, ``2e-4``
    and ``0.0002`` all become ``0.0002``), because the same settings must land in the same run
    directory whether launched singly or in a sweep (skip/resume depend on it). A local copy of the
    recipe's weights is left out (``drop_local_copies``); operational keys are left out by Hydra
    (``exclude_keys`` in conf/hydra/default.yaml). The name is at most 255 bytes (one path component).
    """
    override_dirname = drop_local_copies(override_dirname)
    if not override_dirname:
        return "default"
    slug = canonical_overrides(override_dirname).replace("/", "-").replace(" ", "")
    if len(slug) > 120 or len(slug.encode()) > MAX_NAME_BYTES:  # the hash keeps distinct overrides distinct
        slug = _head(slug[:100], SLUG_HEAD_BYTES) + "-" + hashlib.sha1(slug.encode()).hexdigest()[:12]
    return slug


MAX_NAME_BYTES = 255  # one path component on Linux/macOS filesystems (NAME_MAX), counted in bytes
SLUG_HEAD_BYTES = MAX_NAME_BYTES - 13  # room for "-" and 12 hex digits of the hash


def _head(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes`` (never half a character)."""
    return text.encode()[:max_bytes].decode("utf-8", errors="ignore")


def canonical_overrides(override_dirname: str) -> str:
    """``override_dirname`` with each number, boolean or null spelt as Hydra's sweeps re-print it
    (``trainer.lr=.0002`` -> ``trainer.lr=0.0002``, ``method.r=+8`` -> ``method.r=8``, ``true`` ->
    ``True``), sorted as Hydra sorts. Strings keep the spelling typed (their sweep spelling escapes
    characters that a directory name should not change for)."""
    return ",".join(sorted(_canonical_item(item) for item in _ITEM_SEP.split(override_dirname)))


def _canonical_item(item: str) -> str:
    try:
        override = _parser().parse_override(item)
    except Exception:  # noqa: BLE001  not Hydra's grammar (a hand-made name): the old number rule only
        return _NUMBER.sub(_canonical_number, item)
    if not _plain_value(override.value()):
        return _NUMBER.sub(_canonical_number, item)
    return f"{override.get_key_element()}={override.get_value_element_as_str()}"


def _plain_value(value: object) -> bool:
    """Numbers, booleans and null, or lists/dicts of them: the values whose spelling is not their meaning."""
    if isinstance(value, (list, tuple)):
        return all(map(_plain_value, value))
    if isinstance(value, dict):
        return all(map(_plain_value, value.values()))
    return value is None or (isinstance(value, (bool, int, float)) and not isinstance(value, str))


_PARSER = []


def _parser():
    """Hydra's override parser, made once (building the ANTLR parser is the slow part)."""
    if not _PARSER:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        _PARSER.append(OverridesParser.create())
    return _PARSER[0]


def slug_in_runs(override_dirname: str, *, _root_) -> str:
    """``lb_slug``: ``override_slug``, or the name an existing row directory already has for the same
    values spelt another way (made before names were canonical: ``trainer.lr=.0002``). Existing
    directories keep their names, and a single run or a sweep of the same values finds them."""
    slug = override_slug(override_dirname)
    try:
        row = Path(str(_root_.paths.runs_dir), str(_root_.data.name), str(_root_.model.name),
                   str(_root_.method.name))
    except Exception:  # noqa: BLE001  a config without these keys (a test's): no earlier spelling to find
        return slug
    return _earlier_spelling(row, slug) or slug


def _earlier_spelling(row: Path, slug: str) -> str | None:
    if (row / slug).is_dir() or not row.is_dir():
        return None
    for entry in sorted(row.iterdir()):
        if entry.name != slug and entry.is_dir() and _respell(entry.name) == slug:
            return entry.name
    return None


def _respell(name: str) -> str | None:
    """The canonical slug of an existing directory name (None for a hashed or unparsable one)."""
    if name == "default" or _HASHED.search(name):
        return None
    try:
        return override_slug(name)
    except Exception:  # noqa: BLE001  a directory lodabench did not name
        return None


_HASHED = re.compile(r"-[0-9a-f]{12}$")


def on_rank0(value, other=None):
    """``value`` on the main process, ``other`` on the other ranks of a torchrun job, so that
    Hydra's ``.hydra/`` capture and job log are written once, not by every rank."""
    return value if os.environ.get("RANK", "0") == "0" else other


# ----------------------------------------------------------------------------- confinement
# Every directory lodabench (and Hydra under it) writes, moves or cleans lies strictly inside
# paths.results_dir: a run name is checked before Hydra makes any directory (entry._precheck_job),
# again by the resolvers that give Hydra its job directory (conf/hydra/default.yaml), and by run.run().
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
RECORD_NAME = "record.json"  # records.RECORD (not imported: records imports this module)
OWN_SUBDIRS = ("checkpoints", "attempts", "epochs", ".hydra", "wandb")  # a run's own subdirectories


def check_path_text(value: object, key: str) -> str:
    """A path value is non-empty, has no control character (NUL, newline) and no component over
    255 bytes: anything else cannot name a directory, or names one other tools cannot show."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise ConfigError(f"{key} is empty: it would make the current directory (or the runs root) the run. "
                          f"Fix: give {key} a name, or drop the override to use the default.")
    if _CONTROL.search(text):
        raise ConfigError(f"{key}={text!r} holds a control character (NUL, newline, tab): not a directory name. "
                          f"Fix: spell {key} with printable characters.")
    for part in text.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ConfigError(f"{key}: the path component {part[:40]!r}... is {len(part.encode())} bytes; a "
                              f"directory name may have at most {MAX_NAME_BYTES}. Fix: shorten it, or set "
                              "run_name=<short name> explicitly.")
    return text


def check_run_name(run_name: object) -> str:
    """``run_name`` is relative, and each of its ``/`` components is a real name (not empty, ``.`` or
    ``..``): a name must never reach above ``paths.runs_dir`` or make the runs root itself a run."""
    name = check_path_text(run_name, "run_name")
    if name.startswith(("/", "~")) or os.path.isabs(name):
        raise ConfigError(f"run_name={name!r} starts with '/' or '~'; it is a relative name below paths.runs_dir. "
                          "Fix: give a relative name (run_name=my/run), or set paths.results_dir to move all results.")
    bad = [part for part in name.split("/") if part in ("", ".", "..")]
    if bad:
        raise ConfigError(f"run_name={name!r} has the component {bad[0]!r}: names may not be empty, '.' or '..' "
                          "(they would point at another directory). Fix: give a plain relative name such as "
                          "run_name=my/run.")
    return name


def _real(path: object) -> Path:
    return Path(os.path.realpath(os.path.abspath(str(path))))  # "~" is not expanded: Hydra does not either


def _inside(path: Path, root: Path) -> bool:
    return root in path.parents


def check_locations(results_dir: object, runs_dir: object, run_name: object, run_dir: object) -> Path:
    """Raise ConfigError unless the run directory lies strictly inside paths.runs_dir, itself inside
    paths.results_dir, symlinks followed (a link in the results tree must not lead writes elsewhere).
    Returns the run directory as given."""
    check_run_name(run_name)
    for value, key in ((results_dir, "paths.results_dir"), (runs_dir, "paths.runs_dir"), (run_dir, "run_dir")):
        check_path_text(value, key)
    results, runs, run = _real(results_dir), _real(runs_dir), _real(run_dir)
    if runs != results and not _inside(runs, results):
        raise ConfigError(f"paths.runs_dir={runs_dir} ({runs}) is not inside paths.results_dir={results_dir} "
                          f"({results}), symlinks followed; lodabench writes nothing outside paths.results_dir. "
                          "Fix: set paths.results_dir to the directory that should hold the runs (paths.runs_dir "
                          "defaults to ${paths.results_dir}/runs), or drop paths.runs_dir.")
    if not _inside(run, runs):
        raise ConfigError(f"the run directory {run_dir} ({run}, symlinks followed) is not strictly inside "
                          f"paths.runs_dir={runs_dir} ({runs}). Fix: run_name must be a relative name below "
                          "paths.runs_dir (and run_dir left at its default ${paths.runs_dir}/${run_name}); "
                          "remove a symlink that leads out of the results directory.")
    return Path(str(run_dir))


def check_not_nested(runs_dir: object, run_dir: object) -> None:
    """A run directory may neither lie inside another run's directory nor hold other runs: hygiene and
    force=true act on the whole directory, and must never move or delete another run's files."""
    runs, run = _real(runs_dir), _real(run_dir)
    for parent in run.parents:
        if parent == runs or not _inside(parent, runs):
            break
        if (parent / RECORD_NAME).is_file():
            raise ConfigError(f"the run directory {run_dir} lies inside the run directory {parent} (it holds "
                              f"{RECORD_NAME}). Fix: give run_name a name that is not below another run's.")
    inner = _inner_run(run)
    if inner is not None:
        raise ConfigError(f"the run directory {run_dir} holds other runs ({inner}). Fix: give run_name the "
                          "full name of one run (e.g. <data>/<model>/<method>/<overrides>/seed<N>), not a parent.")


def _inner_run(run: Path) -> Path | None:
    """The first record.json below ``run`` outside its own subdirectories (no symlinks followed)."""
    for top, dirs, files in os.walk(run):
        if Path(top) != run and RECORD_NAME in files:
            return Path(top) / RECORD_NAME
        dirs[:] = [d for d in dirs if not (Path(top) == run and d in OWN_SUBDIRS)]
    return None


# io.atomic_path's temporary files: tempfile.mkstemp(prefix=".<name>.", suffix=".tmp"), i.e.
# ".<name>.<random>.tmp" (8 random characters today; any run of [a-z0-9_] for older versions).
_TEMP_NAME = re.compile(r"^\.[^/]+\.[a-z0-9_]+\.tmp$")


def orphan_temp_files(run_dir: Path) -> list[Path]:
    """lodabench's own temporary files below ``run_dir``: regular files named as io.atomic_path names
    them, never through a symlink and never inside another run's directory. Hygiene deletes these only."""
    found = []
    for top, dirs, files in os.walk(run_dir):
        dirs[:] = [d for d in dirs if not os.path.isfile(os.path.join(top, d, RECORD_NAME))]
        found += [Path(top, f) for f in files if _TEMP_NAME.match(f) and not os.path.islink(os.path.join(top, f))]
    return found


def check_run_dir(cfg) -> Path:
    """The run's directory, checked (names, confinement, nesting): before the lock or any write."""
    paths = cfg.paths
    run_dir = check_locations(paths.results_dir, paths.runs_dir, cfg.run_name, cfg.run_dir)
    check_not_nested(paths.runs_dir, run_dir)
    return run_dir


def confined_run_dir(results_dir, runs_dir, run_name, run_dir) -> str:
    """``lb_run_dir`` (hydra.run.dir): the run directory, refused before Hydra creates it if it escapes."""
    return str(check_locations(results_dir, runs_dir, run_name, run_dir))


def confined_run_name(results_dir, runs_dir, run_name, run_dir) -> str:
    """``lb_run_name`` (hydra.sweep.subdir): each sweep job's name, checked before Hydra creates its directory."""
    check_locations(results_dir, runs_dir, run_name, run_dir)
    return str(run_name)


def register_resolvers() -> None:
    """``lb_slug``, ``lb_rank0``, ``lb_run_dir`` and ``lb_run_name`` for the config tree (idempotent)."""
    resolvers = {"lb_slug": slug_in_runs, "lb_rank0": on_rank0, "lb_run_dir": confined_run_dir,
                 "lb_run_name": confined_run_name}
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_resolvers()
