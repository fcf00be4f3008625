"""The one typed schema (src/lodabench/config/schema.py): every key a run can set is defined once, with its
type and default; what the code reads is settable and what is settable is read; a bad key or value
fails at compose time or in preflight, before any checkpoint is written.

"Read" is established statically (ast): a key is read where the code accesses it on a config node
(``cfg.<group>.<key>``, ``cfg.<group>.get("<key>")``, ``cfg.<group>["<key>"]``) or on a name that
holds one group in the module that consumes it (the trainer's ``self.cfg``, models.py's
``model_cfg``, ...: ``GROUP_NAMES`` below). A method's or task's keys are read where its config
dataclass's module reads the attribute. That covers how lodabench reads configs today; a new
reading style must be added to ``GROUP_NAMES`` or the test below fails on the keys it reads.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from lodabench import methods

from lodabench.config import schema
from lodabench.tasks import task_names
from lodabench.errors import ConfigError
from lodabench.paths import CONF_DIR, REPO_ROOT
from runs_helpers import TINY_E2E, run_cli, run_cli_here

SRC = REPO_ROOT / "src" / "lodabench"
# Every runnable overlay; a *_common file holds what its task overlays share and is composed through them.
OVERLAYS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if not p.stem.endswith("_common"))
GROUPS = {"trainer": schema.TrainerConfig, "selection": schema.SelectionConfig, "paths": schema.PathsConfig,
          "logger": schema.LoggerConfig, "model": schema.ModelConfig, "search": schema.SearchConfig,
          "decoding": schema.node_class("decoding__beam")}
ROOT_KEYS = [f.name for f in dataclasses.fields(schema.RunConfig) if f.name not in GROUPS | {"method": 0, "data": 0}]
# Names that hold one group's node in the module that consumes it (module path relative to src/lodabench).
GROUP_NAMES = {
    "train/trainer.py": {"cfg": "trainer", "c": "trainer", "self.cfg": "trainer"},
    "train/optim.py": {"cfg": "trainer"},
    "train/selection.py": {"node": "selection", "trainer_cfg": "trainer"},
    "models/pretrained.py": {"model_cfg": "model"},
    "tasks/decoding.py": {"cfg": "decoding"},
    "tasks/generation.py": {"dcfg": "decoding"},
    "run/entry.py": {"search": "search"},
}
# Modules that read *recorded* configs of finished runs (plain dicts, old keys included), not the schema.
RECORD_READERS = ("results/", "analysis/", "bench/", "run/records.py", "reference/")
NODE_METHODS = {"get", "items", "keys", "values", "copy", "pop", "setdefault", "update"}


def _receiver_group(expr: ast.AST, names: dict[str, str]) -> tuple[str, str] | None:
    """(kind, group) when ``expr`` is a config node: ``cfg.<group>`` / ``self.cfg.<group>`` or a named one."""
    text = ast.unparse(expr)
    m = re.fullmatch(r"(self\.cfg|cfg|run)\.(\w+)", text)  # run: preflight's typed root (RunConfig)
    if m and (m.group(1) != "run" or names.get("run") == "root") and (m.group(2) in GROUPS or m.group(2) in ("method", "data")):
        return "group", m.group(2)
    if text in ("cfg", "self.cfg", "run") and names.get(text) == "root":
        return "group", "root"
    if text in names:
        return "group", names[text]
    return None


def _reads_in(path: Path) -> set[tuple[str, str]]:
    rel = path.relative_to(SRC).as_posix()
    names = GROUP_NAMES.get(rel, {"cfg": "root", "self.cfg": "root"} if rel in ("run/spine.py", "run/preflight.py") else {})
    if rel == "run/preflight.py":
        names = {**names, "run": "root"}  # the door's typed root (run_config)
    out: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key, recv = None, None
        if isinstance(node, ast.Attribute) and node.attr not in NODE_METHODS:
            key, recv = node.attr, node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            key, recv = node.args[0].value, node.func.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            key, recv = node.slice.value, node.value
        hit = _receiver_group(recv, names) if recv is not None else None
        if hit:
            out.add((hit[1], key))
    return out


def _all_reads() -> set[tuple[str, str]]:
    reads: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        if not path.relative_to(SRC).as_posix().startswith(RECORD_READERS):
            reads |= _reads_in(path)
    return {(g, k) for g, k in reads if not (g == "root" and k in GROUPS | {"method": 0, "data": 0})}


READS = _all_reads()


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _option_classes(group: str) -> dict[str, type]:
    names = methods.method_names() if group == "method" else task_names()
    return {name: schema.node_class(f"{group}__{name}") for name in names}


# ------------------------------------------------------------------------------ read <-> settable
def test_every_key_the_code_reads_is_in_the_schema():
    valid = {g: set(_fields(c)) for g, c in GROUPS.items()}
    valid["root"] = set(ROOT_KEYS)
    for group in ("method", "data"):
        valid[group] = set().union(*map(_fields, _option_classes(group).values()))
    unknown = sorted(f"{g}.{k}" for g, k in READS if k not in valid[g])
    assert not unknown, f"read by the code but not settable (add them to src/lodabench/config/schema.py): {unknown}"


@pytest.mark.parametrize("group", sorted(GROUPS) + ["root"])
def test_every_group_key_is_read(group):
    keys = ROOT_KEYS if group == "root" else _fields(GROUPS[group])
    unread = [k for k in keys if (group, k) not in READS and not _read_by_interpolation(group, k)]
    assert not unread, f"settable but never read by the code (remove them or use them): {group}: {unread}"


def _interpolations() -> str:
    """Every ``${...}`` source: conf/**/*.yaml (Hydra's run dir) and the schema's own string defaults."""
    texts = [p.read_text(encoding="utf-8") for p in CONF_DIR.rglob("*.yaml")]
    for cls in [schema.RunConfig, *GROUPS.values()]:
        texts += [str(f.default) for f in dataclasses.fields(cls) if isinstance(f.default, str)]
    return "\n".join(texts)


INTERPOLATIONS = _interpolations()


def _read_by_interpolation(group: str, key: str) -> bool:
    """run_dir, run_name and paths.* are read by Hydra and by other values through ``${...}``."""
    full = key if group == "root" else f"{group}.{key}"
    return re.search(r"\$\{(?:[\w:]*[:,])?" + re.escape(full) + r"\}", INTERPOLATIONS) is not None


@pytest.mark.parametrize("group", ["method", "data"])
def test_every_method_and_task_key_is_read_by_its_module(group):
    shared = (SRC / "methods" / "__init__.py").read_text() + (SRC / "methods" / "base.py").read_text() \
        + (SRC / "tasks" / "specs.py").read_text() + (SRC / "tasks" / "registry.py").read_text()
    unread = []
    for name, cls in _option_classes(group).items():
        spec = methods.get_spec(name).config_cls if group == "method" else type(_task_default(name))
        modules = [inspect.getfile(k) for k in spec.__mro__[:-1]]
        if group == "data" and "scorer" in _fields(cls):  # a scorer's options live in the data config
            modules.append(inspect.getfile(inspect.getmodule(_scorer_of(name).score)))
        text = shared + "".join(Path(m).read_text() for m in modules)
        unread += [f"{group}={name}: {k}" for k in _fields(cls) if not re.search(rf"\.{k}\b|\"{k}\"", text)]
    assert not unread, unread


def _scorer_of(task: str):
    from lodabench.scoring.registry import get_scorer, scorer_of
    return get_scorer(scorer_of(_task_default(task)))


def _task_default(name: str):
    from lodabench.tasks import registry
    return registry.task_spec(name).config


# ------------------------------------------------------------------------------ every overlay
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_composes_inside_the_schema_and_passes_the_config_checks(overlay):
    from lodabench.tasks.decoding import decoding_config
    from lodabench.models.pretrained import model_description
    from lodabench.train.optim import optimizer_name
    from lodabench.run.preflight import check_eval_checkpoint
    from lodabench.train.selection import selection_config
    from lodabench.train.trainer import check_trainer_values

    cfg = schema.compose([f"experiment={overlay}"])  # check_composed: no key outside the schema
    methods.method_config(cfg.method)
    check_trainer_values(cfg.trainer)
    optimizer_name(cfg.trainer)
    selection_config(cfg)
    check_eval_checkpoint(cfg.eval_checkpoint, cfg.trainer)
    decoding_config(cfg.decoding)
    model_description(cfg.model)
    unread = [k for k in _leaf_keys(cfg) if not _is_read(k)]
    assert not unread, f"{overlay} sets keys no code reads: {unread}"


def _leaf_keys(cfg: DictConfig) -> list[str]:
    out = []
    for top, node in OmegaConf.to_container(cfg, resolve=False).items():
        if isinstance(node, dict) and top not in ("search",):
            out += [f"{top}.{k}" for k in node]
        else:
            out.append(str(top))
    return out


def _is_read(full: str) -> bool:
    group, _, key = full.partition(".")
    if group in ("method", "data"):
        return True  # proven per option by test_every_method_and_task_key_is_read_by_its_module
    if not key:
        return (("root", group) in READS or _read_by_interpolation("root", group)
                or group == "search" and ("search", "space") in READS)
    return (group, key) in READS or _read_by_interpolation(group, key)


# ------------------------------------------------------------------------------ refused at compose
@pytest.mark.parametrize("override", ["+trainer.lrr=1", "+decoding.beams=4", "+selection.rul=last",
                                      "+paths.data=x", "+logger.projectt=x", "+model.famly=gpt2",
                                      "+method.rank=3", "+data.scorrer=e2e", "+seeed=1", "+search.spaces=1"])
def test_an_unknown_key_in_any_group_fails_at_compose(override):
    key = override[1:].split("=")[0]
    with pytest.raises(ConfigError, match=rf"unknown config key {re.escape(key)}"):
        schema.compose([override])


@pytest.mark.parametrize("override", ["trainer.lr=abc", "decoding.num_beams=abc", "selection.epochs=abc",
                                      "method.r=abc", "model.config_overrides=3", "seed=abc", "force=maybe",
                                      "data.max_train_examples=abc", "logger.tags=3", "paths.data_root=[1]"])
def test_a_wrongly_typed_value_in_any_group_fails_at_compose(override):
    with pytest.raises(HydraException, match=re.escape(override.split("=")[0])):
        schema.compose([override])


def test_defaults_live_in_one_place():
    """No YAML restates a code-defined option; every option composes to its dataclass defaults."""
    for group in ("method", "trainer", "selection", "paths", "logger"):
        yamls = [p.name for p in (CONF_DIR / group).glob("*.yaml")] if (CONF_DIR / group).is_dir() else []
        assert not yamls, f"conf/{group}/ restates defaults that live in src/lodabench/config/schema.py: {yamls}"
    assert not (CONF_DIR / "decoding" / "beam.yaml").exists()
    cfg = schema.compose(["method=loda"])
    assert OmegaConf.to_container(cfg.method) == schema.defaults_of("method", "loda")
    assert OmegaConf.to_container(cfg.trainer) == schema.defaults_of("trainer")


# ------------------------------------------------------------------------------ the bar, end to end
def test_bad_decoding_value_fails_before_any_checkpoint(tmp_path):
    proc = run_cli_here([*TINY_E2E, "decoding.num_beams=0"], tmp_path, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "decoding.num_beams=0" in proc.stderr
    assert not list(tmp_path.rglob("checkpoints")), "a checkpoint was written before the bad value failed"


@pytest.mark.parametrize("override", ["+trainer.lrr=1", "decoding.num_beams=abc"])
def test_unknown_or_mistyped_key_fails_before_hydra_makes_a_directory(tmp_path, override):
    proc = run_cli_here([*TINY_E2E, override], tmp_path, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("lodabench: error:") and override.lstrip("+").split("=")[0] in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_door_composes_a_valid_first_job_once(tmp_path, monkeypatch):
    """entry._precheck_job composes the command's first job once (with Hydra's node, as Hydra will),
    and checks keys, types and locations on that one config; a second compose, for the error in our
    words, only follows one that Hydra refused (before: two composes for every launch, ~0.3 s each)."""
    import hydra

    from lodabench.run import entry

    composed = []
    real = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *a, **k: composed.append(k.get("overrides")) or real(*a, **k))
    monkeypatch.setenv("LODABENCH_RESULTS_DIR", str(tmp_path))
    entry._precheck_job([*TINY_E2E, "run_name=ok"])
    assert len(composed) == 1, composed
    for override, composes in (("+trainer.lrr=1", 1), ("decoding.num_beams=abc", 2)):  # check_composed; Hydra's refusal
        composed.clear()
        with pytest.raises(SystemExit) as refused:
            entry._precheck_job([*TINY_E2E, override])
        assert refused.value.code == 2 and len(composed) == composes, (override, composed)
