"""Fingerprints of what a run read: the bytes behind its numbers, in ``record.json``'s ``inputs``.

A run directory stands for a config *and* the bytes that config read. The record's top-level
``inputs`` block (mirrored into each attempt) holds, besides where things came from:

* ``data``: the task's files (``lodabench.tasks.hub``) with ``sha256`` of each file read (hub data:
  also the dataset id and the commit it resolved to), and ``root_from``: which setting chose the
  data root (``paths.data_root``, ``$LODABENCH_DATA_ROOT``, ``../shared/data``, or the hub);
* ``weights``: a local directory, ``pkg://`` location or GGUF file: ``sha256`` of every weights
  file in it (``WEIGHT_PATTERNS``: what ``from_pretrained`` may load); a hub id: id + resolved commit;
* ``tokenizer``: the same for the tokenizer's files (``TOKENIZER_PATTERNS``);
* ``scorer``: its name, module and that module's sha256, the scoring packages' versions, and the
  sha256 of pycocoevalcap's jars and METEOR's paraphrase table (E2E and DART scoring run them);
* ``plugins``: every plugin module loaded (module, where it was named, version, file sha256);
* ``fingerprinted: true``. A record without it was made before fingerprints: it keeps loading
  and skipping, and ``lodabench verify`` says it cannot be checked.

Every fingerprinted entry has ``base`` (a folder) and ``sha256`` (name relative to base -> hex
digest); a scanned folder (weights, tokenizer) also keeps its ``patterns``, so a weights file added
later (``model.safetensors`` beside ``pytorch_model.bin`` changes what loads) is seen as a change.

Uses: a complete run is skipped only if its data, weights and tokenizer still hash as recorded
(``stale_inputs``; else the launch is refused, naming the file, and ``force=true`` re-runs it); a
resume whose inputs differ from the attempt it continues is refused (``check_resume``); and
``lodabench verify RUN_DIR`` re-hashes everything (``main``). Hashes are computed afresh in each
process: nothing is cached, so a file replaced by a same-size file with the same mtime is still seen.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata as md
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from lodabench.errors import ConfigError, LodabenchError

CHUNK = 1 << 20
# What transformers' from_pretrained may read from a model folder (weights, shards' index, config).
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.h5", "*.msgpack",
                   "*.index.json", "config.json", "generation_config.json")
TOKENIZER_PATTERNS = ("tokenizer*.json", "vocab.*", "merges.txt", "special_tokens_map.json", "added_tokens.json",
                      "*.model", "*.tiktoken")
# pycocoevalcap's files that E2E (meteor/, tokenizer/) and DART (spice/lib/Meteor-1.5.jar) scoring run.
SCORER_FILES = ("meteor/meteor-1.5.jar", "meteor/data/paraphrase-en.gz", "spice/lib/Meteor-1.5.jar",
                "tokenizer/stanford-corenlp-3.4.1.jar")
SCORER_PACKAGES = ("pycocoevalcap", "sacrebleu", "rouge-score", "nltk", "scikit-learn", "scipy")
CHECKED_ON_SKIP = ("data", "weights", "tokenizer")  # what makes old numbers wrong for the same command
OPTIONAL_PARTS = ("init",)  # checked with the above where a record holds them (a warm start's file)
FORCE_FIX = "force=true re-runs it"


# ----------------------------------------------------------------------------- hashing
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights can be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(base: Path, names: Iterable[str]) -> dict[str, str | None]:
    """{name: sha256} of ``base/name``; None for a file that is not there (a caller reports it)."""
    return {name: (sha256_file(base / name) if (base / name).is_file() else None) for name in names}


def scan(base: Path, patterns: Iterable[str]) -> list[str]:
    """The files directly in ``base`` matching any pattern, sorted (from_pretrained reads no subfolder)."""
    if not base.is_dir():
        return []
    return sorted({p.name for pattern in patterns for p in base.glob(pattern) if p.is_file()})


def folder_entry(path: Path, patterns: tuple[str, ...]) -> dict[str, Any]:
    """Fingerprint of a model or tokenizer location: a folder scanned by ``patterns``, or one file."""
    path = path.expanduser().resolve()
    if path.is_file():
        return {"base": str(path.parent), "sha256": hash_files(path.parent, [path.name])}
    return {"base": str(path), "patterns": list(patterns), "sha256": hash_files(path, scan(path, patterns))}


# ----------------------------------------------------------------------------- what a run read
def run_inputs(plan: Any, weights: dict[str, Any]) -> dict[str, Any]:
    """The record's ``inputs`` block for a run that has loaded its data and model (run.build_model).

    Reads the typed plan (run.preflight.Plan: ``task``, ``data``, ``model``, ``data_root``), never the
    composed config."""
    task = plan.task
    return {"fingerprinted": True, "data": data_inputs(plan.data_root, task), "weights": weights_inputs(weights),
            "tokenizer": tokenizer_inputs(plan.model, weights), "scorer": scorer_inputs(plan.data, task),
            "plugins": plugin_inputs(), **init_inputs(plan.init_from)}


def init_inputs(init_from: str | None) -> dict[str, Any]:
    """``{"init": entry}`` for a warm start: the one file its weights came from (a run directory's chosen
    checkpoint, a trainable.safetensors, or ``loralib:PATH``), so that replacing it at the same path is
    seen on skip, resume and verify like any other input; ``{}`` without ``init_from``."""
    if not init_from:
        return {}
    from lodabench.methods.checkpoint import resolve_warm_start
    from lodabench.methods.loralib_import import PREFIX

    location = str(init_from)
    path = Path(location[len(PREFIX):]) if location.startswith(PREFIX) else resolve_warm_start(location)
    return {"init": {"init_from": location, **folder_entry(Path(path), ())}}


def parts_recorded(inputs: Mapping[str, Any], parts: Iterable[str]) -> tuple[str, ...]:
    """``parts`` plus the optional ones this record holds (``init``: only runs with a warm start)."""
    return (*parts, *(p for p in OPTIONAL_PARTS if isinstance(inputs.get(p), dict)))


def data_inputs(data_root: str | None, task: Any) -> dict[str, Any] | None:
    """``task.inputs`` (the same dict: files read later are still appended) plus base, sha256, root_from;
    ``data_root``: the configured ``paths.data_root``."""
    inputs = getattr(task, "inputs", None)
    if not isinstance(inputs, dict) or "files" not in inputs:
        return inputs
    base = data_base(inputs)
    inputs["root_from"] = root_from(data_root, inputs)
    if base is not None:
        inputs["base"] = str(base)
        inputs["sha256"] = hash_files(base, inputs["files"])
    return inputs


def data_base(inputs: Mapping[str, Any]) -> Path | None:
    """The folder a task's ``files`` are relative to: the data root, or the hub snapshot / local copy."""
    folder = inputs.get("data_root") if inputs.get("source") == "data_root" else inputs.get("local_dir")
    return Path(folder) if folder else None


def root_from(data_root: str | None, inputs: Mapping[str, Any]) -> str:
    """Which setting chose the data (the config's ``paths.data_root`` alone says null under the env var)."""
    from lodabench.paths import DATA_ROOT_ENV

    if inputs.get("source") != "data_root":
        return "hub (no data root set)"
    if data_root not in (None, "", "null"):
        return "paths.data_root"
    if os.environ.get(DATA_ROOT_ENV) not in (None, "", "null"):
        return f"${DATA_ROOT_ENV}"
    return "../shared/data beside the repository"


def weights_inputs(weights: dict[str, Any]) -> dict[str, Any]:
    """``models.weights_read`` plus the sha256 of the files of a local/pkg/GGUF location (hub: its commit)."""
    if weights.get("source") in ("local", "gguf") and weights.get("path"):
        return {**weights, **folder_entry(Path(weights["path"]), WEIGHT_PATTERNS)}
    return dict(weights)


def tokenizer_inputs(model_cfg: Any, weights: Mapping[str, Any]) -> dict[str, Any]:
    """The tokenizer's files (a local folder), or its hub id (with the weights' commit when it is their repo)."""
    from lodabench.models.pretrained import model_description, resolve_location, tokenizer_location
    from lodabench.config.run_names import is_local_path

    model_cfg = model_description(model_cfg)
    if model_cfg.source == "gguf" and not model_cfg.tokenizer:
        return {"source": "gguf", "note": "read from the GGUF file (see weights)"}
    location = str(tokenizer_location(model_cfg))
    path = resolve_location(location)
    if location.startswith("pkg://") or is_local_path(path):
        return {"source": "local", "location": location, **folder_entry(Path(path), TOKENIZER_PATTERNS)}
    same = weights.get("source") == "hub" and weights.get("hub_id") == location
    return {"source": "hub", "hub_id": location, "resolved_revision": weights.get("resolved_revision") if same else None}


def scorer_inputs(data: Any, task: Any) -> dict[str, Any]:
    """The scorer's name, module (+ sha256), the scoring packages' versions and pycocoevalcap's jars
    (``data``: the typed data group)."""
    from lodabench.run.records import package_versions

    versions = package_versions()
    out: dict[str, Any] = {"packages": {p: versions.get(p) or _version(p) for p in SCORER_PACKAGES}}
    if getattr(task, "kind", None) != "generation":
        return {"name": "glue metrics (scikit-learn, scipy)", "module": "lodabench.scoring.glue", **out}
    from lodabench.scoring.registry import get_scorer
    name = getattr(data, "scorer", None) or data.name
    module = get_scorer(name).score.__module__
    out.update(name=name, module=module, module_file=_module_file_entry(module))
    jars = _pycocoevalcap_dir()
    if jars is not None:
        out.update(base=str(jars), sha256={k: v for k, v in hash_files(jars, SCORER_FILES).items() if v})
    return out


def plugin_inputs() -> list[dict[str, Any]]:
    """Every plugin module this process loaded (lodabench.plugins): module, source, version, file sha256."""
    from lodabench.config.plugin_loader import loaded_plugins

    return [{"module": module, "named_by": source, "version": _module_version(module),
             **_module_file_entry(module)} for module, source in sorted(loaded_plugins().items())]


def _module_file_entry(module: str) -> dict[str, Any]:
    path = getattr(sys.modules.get(module) or importlib.import_module(module), "__file__", None)
    if not path:
        return {"base": None, "sha256": {}}
    return {"base": str(Path(path).parent), "sha256": hash_files(Path(path).parent, [Path(path).name])}


def _module_version(module: str) -> str | None:
    """The version of the distribution that ships ``module`` (else its ``__version__``)."""
    top = module.split(".")[0]
    for dist in md.packages_distributions().get(top, []):
        return _version(dist)
    return getattr(sys.modules.get(module), "__version__", None)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _pycocoevalcap_dir() -> Path | None:
    from lodabench.errors import ScoringError
    from lodabench.scoring.java import pycocoevalcap_dir
    try:
        return pycocoevalcap_dir()
    except ScoringError:
        return None


# ----------------------------------------------------------------------------- checking
@dataclass(frozen=True)
class Finding:
    """One input file's state now: ok, changed, missing, added, or not fingerprinted."""

    part: str
    name: str
    status: str
    old: str | None = None
    new: str | None = None

    def line(self) -> str:
        digests = f" (sha256 {_short(self.old)} -> {_short(self.new)})" if self.status == "changed" else ""
        return f"{self.part} {self.name}: {self.status}{digests}"


def _short(digest: str | None) -> str:
    return str(digest)[:12] if digest else "none"


def check_entry(part: str, entry: Any, base: Path | None = None) -> list[Finding]:
    """Re-hash one fingerprinted entry (``base`` overrides its recorded folder)."""
    if not isinstance(entry, dict) or "sha256" not in entry:
        return []
    recorded = entry["sha256"]
    if not isinstance(recorded, dict) or not all(isinstance(v, (str, type(None))) for v in recorded.values()):
        raise ConfigError(f"inputs.{part}.sha256 is not a mapping of file name to sha256 ({recorded!r:.200})")
    if base is None and not isinstance(entry.get("base"), str):
        raise ConfigError(f"inputs.{part}.base is {entry.get('base')!r}, not the folder its files are relative to")
    base = base or Path(entry["base"])
    out = [_compare(part, name, old, base / name) for name, old in sorted(recorded.items())]
    added = set(scan(base, entry["patterns"])) - set(recorded) if isinstance(entry.get("patterns"), list) else set()
    return out + [Finding(part, name, "added", None, sha256_file(base / name)) for name in sorted(added)]


def _compare(part: str, name: str, old: str | None, path: Path) -> Finding:
    if old is None:
        return Finding(part, name, "missing" if not path.is_file() else "not fingerprinted")
    if not path.is_file():
        return Finding(part, name, "missing", old)
    new = sha256_file(path)
    return Finding(part, name, "ok" if new == old else "changed", old, new)


def check_inputs(inputs: Any, parts: Iterable[str], bases: Mapping[str, Path] | None = None) -> list[Finding]:
    """Findings for the named parts of a record's ``inputs`` (plugins: one entry per module)."""
    if not isinstance(inputs, dict):
        raise ConfigError(f"inputs is {type(inputs).__name__}, not an object")
    out: list[Finding] = []
    for part in parts:
        value = inputs.get(part)
        if value is None:
            out.append(Finding(part, "(nothing recorded)", "not fingerprinted"))
            continue
        if not isinstance(value, list if part == "plugins" else dict):
            raise ConfigError(f"inputs.{part} is {type(value).__name__}, not "
                              f"{'a list' if part == 'plugins' else 'an object'}")
        entries = value if part == "plugins" else [value]
        for entry in entries:
            name = f"{part}[{entry.get('module')}]" if part == "plugins" and isinstance(entry, dict) else part
            out += check_entry(name, entry, (bases or {}).get(part)) + _unhashed_files(name, entry)
            if isinstance(entry, dict) and isinstance(entry.get("module_file"), dict):
                out += check_entry(f"{name} module {entry.get('module')}", entry["module_file"])
    return out


def _unhashed_files(part: str, entry: Any) -> list[Finding]:
    """Data files read after the inputs were fingerprinted (listed in ``files``, no sha256)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
        return []
    return [Finding(part, str(f), "not fingerprinted") for f in entry["files"] if f not in entry.get("sha256", {})]


def is_fingerprinted(inputs: Any) -> bool:
    return isinstance(inputs, dict) and inputs.get("fingerprinted") is True


# ----------------------------------------------------------------------------- skip and resume
def stale_inputs(record: Any, cfg: Any) -> str | None:
    """Why a complete run must not answer with its recorded numbers now (None: it may be skipped).

    Re-hashes the data, weights and tokenizer files it read, where this launch would read them
    (a data root or local model folder given elsewhere now is hashed there: content decides, not path).
    A record made before fingerprints returns None: it keeps skipping, as before.
    """
    inputs = record.data.get("inputs")
    if not is_fingerprinted(inputs):
        return None
    try:
        findings = check_inputs(inputs, parts_recorded(inputs, CHECKED_ON_SKIP), current_bases(cfg, inputs))
    except ConfigError as exc:
        return (f"run directory {record.run_dir} is complete but its record's {exc}; its numbers cannot be tied "
                f"to its inputs. Fix: {FORCE_FIX}")
    bad = [f for f in findings if f.status in ("changed", "missing", "added")]
    if not bad:
        return None
    return (f"run directory {record.run_dir} is complete, but what it read has changed since: "
            f"{'; '.join(f.line() for f in bad[:6])}{' ...' if len(bad) > 6 else ''}. Its recorded numbers belong "
            f"to the old bytes, so they are not returned. Fix: {FORCE_FIX} with the new files (the old outputs move "
            "to attempts/<n>/), or restore the files the record names.")


def current_bases(cfg: Any, inputs: Mapping[str, Any]) -> dict[str, Path]:
    """Where this launch would read data and local weights, when that differs from the record's folders."""
    from lodabench.paths import resolve_data_root

    out: dict[str, Path] = {}
    data = inputs.get("data")
    if isinstance(data, dict) and data.get("source") == "data_root":
        root = resolve_data_root(cfg.paths.get("data_root"))
        if root is not None:
            out["data"] = root
    weights, location = inputs.get("weights"), str(cfg.model.pretrained)
    if isinstance(weights, dict) and weights.get("source") == "local" and weights.get("patterns"):
        from lodabench.models.pretrained import resolve_location
        from lodabench.config.run_names import is_local_path
        if location.startswith("pkg://") or is_local_path(location):  # a hub id now: the recorded folder
            out["weights"] = Path(resolve_location(location)).expanduser().resolve()
    return out


def check_resume(record: Any, inputs: Mapping[str, Any]) -> None:
    """Refuse to resume work made from other data, weights or tokenizer than this attempt read."""
    base = resumed_attempt_inputs(record)
    if not is_fingerprinted(base) or not is_fingerprinted(inputs):
        return
    diffs = [d for part in parts_recorded(inputs, CHECKED_ON_SKIP)
             for d in _digest_diffs(part, base.get(part), inputs.get(part))]
    if diffs:
        raise ConfigError(
            f"run directory {record.run_dir} holds unfinished work made from other inputs than this launch read: "
            f"{'; '.join(diffs[:6])}{' ...' if len(diffs) > 6 else ''}. Resuming would train one result on two "
            f"datasets or models. Fix: {FORCE_FIX} from step 0, or restore the files the first attempt read.")


def resumed_attempt_inputs(record: Any) -> Any:
    """The inputs of the attempt whose work this one resumes: the last earlier one that started at step 0."""
    attempts = getattr(record, "attempts", None) or []
    if len(attempts) < 2 or attempts[-1].get("start") != "resume":
        return None
    for attempt in reversed(attempts[:-1]):
        if attempt.get("start", "step 0") == "step 0":
            return attempt.get("inputs")
    return None


def _digest_diffs(part: str, old: Any, new: Any) -> list[str]:
    """``"data e2e/trainset.csv sha256 ab12 -> cd34"`` for each file whose digest differs."""
    old_map = old.get("sha256") if isinstance(old, dict) else None
    new_map = new.get("sha256") if isinstance(new, dict) else None
    if not isinstance(old_map, dict) or not isinstance(new_map, dict):
        return []
    scanned = isinstance(new.get("patterns"), list)  # weights/tokenizer folders: the set of files counts too
    names = set(old_map) | set(new_map) if scanned else set(old_map) & set(new_map)
    return [f"{part} {n} sha256 {_short(old_map.get(n))} -> {_short(new_map.get(n))}"
            for n in sorted(names) if old_map.get(n) != new_map.get(n)]


# ----------------------------------------------------------------------------- lodabench verify
VERIFIED_PARTS = ("data", "weights", "tokenizer", "scorer", "plugins")
TRUSTED = {"ok"}


def verify_run(run_dir: Path) -> tuple[bool, list[str]]:
    """(trusted, report lines) for one run directory; ConfigError when it is not a readable run."""
    from lodabench.io import read_json_file
    from lodabench.run.records import RECORD

    try:
        record = read_json_file(run_dir / RECORD, "restore it from a backup, or re-run the run with force=true")
    except LodabenchError as exc:
        return False, [f"{run_dir}: NOT TRUSTED: {exc}"]
    inputs = record.get("inputs") if isinstance(record, dict) else None
    if not is_fingerprinted(inputs):
        return False, [f"{run_dir}: CANNOT VERIFY: made before fingerprints (inputs.fingerprinted is not true); "
                       f"re-run it with {FORCE_FIX.replace(' re-runs it', '')} to record them"]
    try:
        findings = check_inputs(inputs, parts_recorded(inputs, VERIFIED_PARTS))
    except ConfigError as exc:
        return False, [f"{run_dir}: NOT TRUSTED: its record's {exc}"]
    return _report(run_dir, findings, inputs)


def _report(run_dir: Path, findings: list[Finding], inputs: Mapping[str, Any]) -> tuple[bool, list[str]]:
    trusted = all(f.status in TRUSTED for f in findings)
    bad = sum(f.status not in TRUSTED for f in findings)
    head = (f"{run_dir}: trusted as recorded ({len(findings)} files ok)" if trusted
            else f"{run_dir}: NOT TRUSTED: {bad} of {len(findings)} inputs differ from the record")
    return trusted, [head, *(f"  {f.line()}" for f in findings), *_pinned_lines(inputs)]


def _pinned_lines(inputs: Mapping[str, Any]) -> list[str]:
    """Inputs fingerprinted by a hub commit, not by files: named so a reader knows what was checked."""
    out = []
    for part in ("data", "weights", "tokenizer"):
        entry = inputs.get(part)
        if isinstance(entry, dict) and entry.get("source") == "hub":
            out.append(f"  {part} {entry.get('hub_id')}: hub commit {entry.get('resolved_revision')} (not re-hashed)")
        elif isinstance(entry, dict) and entry.get("source") == "random_init":
            out.append(f"  {part}: random init from config {entry.get('config')} (no file read)")
    return out


def main(argv: list[str] | None = None) -> int:
    """``lodabench verify RUN_DIR [RUN_DIR...]``: 0 all trusted, 1 something changed/missing/unverifiable,
    2 bad usage (not a run directory)."""
    parser = argparse.ArgumentParser(prog="lodabench verify", description=(
        "Re-hash what each run read (data, weights, tokenizer, scorer files, plugins) and say whether its "
        "record can be trusted as written. Exit 0: all ok; 1: something changed, is missing, or the run was "
        "made before fingerprints; 2: not a run directory."))
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", type=Path)
    args = parser.parse_args(argv)
    not_runs = [d for d in args.run_dirs if not (d / "record.json").is_file()]
    if not_runs:
        raise ConfigError(f"not run directories (no record.json): {', '.join(map(str, not_runs))}. Fix: give "
                          "folders that hold record.json, e.g. results/runs/<experiment>/<run name>")
    trusted = True
    for run_dir in args.run_dirs:
        ok, lines = verify_run(run_dir)
        print("\n".join(lines))
        trusted &= ok
    return 0 if trusted else 1


__all__ = ["Finding", "check_inputs", "check_resume", "main", "run_inputs", "sha256_file", "stale_inputs",
           "verify_run"]
