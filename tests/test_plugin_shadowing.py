"""Registries refuse shadowing (issue 27): a built-in name (method, task, scorer, pipeline kind, a
method's config values) is replaced only with ``replace=True``, the refusal names the plugin module,
the name and ``replace=True``; a replacement is listed by ``plugins.replaced_builtins()`` for the
record; whatever a plugin's import raises is that plugin's one-line ConfigError."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import pytest

import lodabench
from lodabench import methods, plugins
from lodabench.tasks import registry
from lodabench.errors import ConfigError
from lodabench.methods.base import LoRAStyleConfig, hp
from lodabench.tasks.pipelines import PIPELINES, register_pipeline
from lodabench.scoring import registry as scoring


@dataclass
class _MyLoRA(LoRAStyleConfig):
    name: str = hp("lora", "config name of the method")


def _my_lora() -> methods.MethodSpec:
    from lodabench.methods import lora

    return lodabench.MethodSpec("lora", _MyLoRA, lora.apply, lora.merge)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """write(name, source): a plugin module named by LODABENCH_PLUGINS; everything it did is undone after."""
    names: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        names.append(name)
        monkeypatch.setenv(plugins.ENV_VAR, ",".join(names))
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)
        plugins._loaded.pop(name, None)
        plugins._failed.pop(name, None)
    methods.unregister_method("lora")
    registry.unregister_task("e2e")


# ----------------------------------------------------------------------------- methods


def test_lora_cannot_be_replaced_before_its_first_use(monkeypatch):
    """The old check only saw names already looked up: a plugin imported first took ``lora``."""
    monkeypatch.setattr(methods.METHODS, "specs", {})  # no built-in method looked up yet
    monkeypatch.setattr(methods.METHODS, "builtin", {})
    with pytest.raises(ConfigError, match=r"method='lora', a built-in name \(defined in lodabench.methods.lora\)"
                                          r".*pass replace=True to register_method"):
        lodabench.register_method(_my_lora())
    assert methods.get_spec("lora").config_cls.__module__ == "lodabench.methods.lora"
    assert plugins.replaced_builtins() == []


def test_lora_replaced_with_replace_is_listed_and_restored():
    mine = lodabench.register_method(_my_lora(), replace=True)
    try:
        assert methods.get_spec("lora") is mine
        assert plugins.replaced_builtins() == [{"kind": "method", "name": "lora",
                                                "builtin": "lodabench.methods.lora", "by": __name__}]
    finally:
        methods.unregister_method("lora")
    assert methods.get_spec("lora") is methods.builtin_spec("lora") and plugins.replaced_builtins() == []


def test_a_builtin_registering_itself_again_is_no_replacement():
    spec = methods.get_spec("loda")
    assert lodabench.register_method(spec) is spec and plugins.replaced_builtins() == []


def test_builtin_method_config_values_need_replace():
    with pytest.raises(ConfigError, match=r"config values for method='lora', a built-in name.*replace=True to "
                                          r"register_method_config"):
        lodabench.register_method_config("lora", {"name": "lora", "r": 2})


# ----------------------------------------------------------------------------- tasks, scorers, pipelines


def test_task_replacement_is_refused_then_listed():
    mine = dataclasses.replace(registry.task_spec("e2e"), description="mine")
    with pytest.raises(ConfigError, match=r"data='e2e', a built-in name .*replace=True to register_task"):
        lodabench.register_task(mine)
    lodabench.register_task(mine, replace=True)
    try:
        assert [r["kind"] + ":" + r["name"] for r in plugins.replaced_builtins()] == ["task:e2e"]
    finally:
        registry.unregister_task("e2e")
    assert plugins.replaced_builtins() == []


def test_scorer_replacement_is_refused_then_listed():
    mine = dataclasses.replace(scoring.get_scorer("dart"), primary_metric="TER")
    with pytest.raises(ConfigError, match=r"data.scorer='dart', a built-in name .*replace=True to register_scorer"):
        lodabench.register_scorer(mine)
    lodabench.register_scorer(mine, replace=True)
    try:
        assert plugins.replaced_builtins()[0]["name"] == "dart"
    finally:
        scoring.unregister_scorer("dart")
    assert plugins.replaced_builtins() == []


def test_pipeline_kind_replacement_is_refused_then_listed(monkeypatch):
    PIPELINES.names()  # the built-in kinds registered, then copied: the test's registrations are undone
    monkeypatch.setattr(PIPELINES, "specs", dict(PIPELINES.specs))
    monkeypatch.setattr(PIPELINES, "modules", dict(PIPELINES.modules))
    monkeypatch.setattr("lodabench.config.replacements.REPLACED", {})
    with pytest.raises(ConfigError, match=r"pipeline kind 'generation', a built-in name .*register_pipeline"):
        register_pipeline("generation", "my_mod:MyPipeline")
    register_pipeline("generation", "lodabench.tasks.generation:GenerationPipeline")  # itself: no change
    assert plugins.replaced_builtins() == []
    register_pipeline("generation", "my_mod:MyPipeline", replace=True)
    assert plugins.replaced_builtins()[0]["by"] == "my_mod:MyPipeline"


# ----------------------------------------------------------------------------- inside a plugin's import


def test_refusal_names_the_plugin_module_and_where_it_was_named(plugin):
    name = plugin("shadow_lora_plugin", "import dataclasses, lodabench\nfrom lodabench.methods import lora\n"
                  "lodabench.register_method(dataclasses.replace(lora.SPECS[0]))\n")
    with pytest.raises(ConfigError) as err:
        plugins.load_plugins()
    assert str(err.value).startswith(f"plugin module {name!r} (from LODABENCH_PLUGINS={name}) registers method=")
    assert "replace=True" in str(err.value)


def test_replacement_by_a_plugin_names_the_plugin(plugin):
    plugin("replace_lora_plugin", "import dataclasses, lodabench\nfrom lodabench.methods import lora\n"
           "spec = next(s for s in lora.SPECS if s.name == 'lora')\n"
           "lodabench.register_method(dataclasses.replace(spec), replace=True)\n")
    plugins.load_plugins()
    assert plugins.replaced_builtins() == [{"kind": "method", "name": "lora", "builtin": "lodabench.methods.lora",
                                            "by": "replace_lora_plugin"}]


@pytest.mark.parametrize("source, says", [
    ("raise RuntimeError('no GPU found')\n", "failed while being imported: RuntimeError: no GPU found (at "),
    ("import sys\nsys.exit(3)\n", "failed while being imported: SystemExit: 3"),
    ("def broken(:\n", "failed while being imported: SyntaxError: "),
    ("import lodabench_no_such_dependency\n", "cannot be imported: No module named 'lodabench_no_such_dependency'"),
])
def test_any_exception_of_a_plugin_import_is_its_failure(plugin, source, says):
    name = plugin("raising_plugin", source)
    with pytest.raises(ConfigError) as err:
        plugins.load_plugins()
    assert str(err.value).startswith(f"plugin module {name!r} (from LODABENCH_PLUGINS={name}) ")
    assert says in str(err.value) and "\n" not in str(err.value) and "Fix:" in str(err.value)


def test_a_failed_plugin_is_not_imported_twice(plugin, tmp_path):
    """Re-importing a half-registered plugin would report a name clash instead of its real error."""
    name = plugin("counting_plugin", f"open({str(tmp_path / 'imports')!r}, 'a').write('x')\nraise ValueError('bad')\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match=f"plugin module '{name}' .*ValueError: bad"):
            plugins.load_plugins()
    assert (tmp_path / "imports").read_text() == "x"


def test_a_plugin_not_found_is_looked_for_again(plugin, monkeypatch):
    """Nothing of a module that was not found ran: once it is installed, the next lookup imports it."""
    import importlib

    monkeypatch.setenv(plugins.ENV_VAR, "later_plugin")
    with pytest.raises(ConfigError, match="'later_plugin' .* cannot be imported"):
        plugins.load_plugins()
    plugin("later_plugin", "X = 1\n")
    importlib.invalidate_caches()
    assert "later_plugin" in plugins.load_plugins()
