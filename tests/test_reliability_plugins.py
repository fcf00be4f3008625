"""Reliability of plugins (issue 27): a plugin cannot run its code under a built-in name unless it
says ``replace=True`` (and then the record says so), and whatever its import raises stops the launch
with one line naming the plugin, before anything is written.

Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runs_helpers import REPO_ROOT, TINY_E2E, run_cli, run_dirs

rel = pytest.mark.reliability
SHADOW_LORA = ("import dataclasses, lodabench\nfrom lodabench.methods import lora\n"
               "spec = next(s for s in lora.SPECS if s.name == 'lora')\n"
               "lodabench.register_method(dataclasses.replace(spec){replace})\n")


def _launch(tmp_path: Path, module: str, source: str, args: list[str] | None = None):
    """``python -m lodabench`` with ``module`` (written from ``source``) as the only plugin."""
    (tmp_path / "plug").mkdir(exist_ok=True)
    (tmp_path / "plug" / f"{module}.py").write_text(source, encoding="utf-8")
    env = {"PYTHONPATH": f"{tmp_path / 'plug'}{os.pathsep}{REPO_ROOT / 'src'}", "LODABENCH_PLUGINS": module,
           "OMP_NUM_THREADS": "1"}
    return run_cli(args or TINY_E2E, tmp_path / "results", env=env, check=False, timeout=300)


def _one_line_refusal(proc, results: Path) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not results.exists() or not any(results.rglob("*")), "a refused launch wrote into the results dir"
    (line,) = proc.stderr.strip().splitlines()
    return line


@rel(case="a plugin registers the built-in name lora without replace=True",
     done="LODABENCH_PLUGINS=<module> whose import calls register_method(<a copy of lora's spec>), then a tiny launch",
     expect="exit 2 before anything is written: one line naming the plugin module, method='lora' and replace=True")
def test_plugin_cannot_shadow_lora(tmp_path):
    proc = _launch(tmp_path, "shadow_lora", SHADOW_LORA.format(replace=""))
    line = _one_line_refusal(proc, tmp_path / "results")
    assert line.startswith("lodabench: error: plugin module 'shadow_lora' (from LODABENCH_PLUGINS=shadow_lora) "
                           "registers method='lora', a built-in name")
    assert "replace=True" in line


@rel(case="a plugin registers the built-in task name e2e without replace=True",
     done="LODABENCH_PLUGINS=<module> whose import calls register_task(<e2e's spec with another description>)",
     expect="exit 2 before anything is written: one line naming the plugin module, data='e2e' and replace=True")
def test_plugin_cannot_shadow_a_task(tmp_path):
    source = ("import dataclasses, lodabench\nfrom lodabench.tasks.registry import task_spec\n"
              "lodabench.register_task(dataclasses.replace(task_spec('e2e'), description='mine'))\n")
    line = _one_line_refusal(_launch(tmp_path, "shadow_e2e", source), tmp_path / "results")
    assert "plugin module 'shadow_e2e'" in line and "data='e2e', a built-in name" in line and "replace=True" in line


@rel(case="a plugin's import raises something other than ImportError",
     done="LODABENCH_PLUGINS=<module> whose import raises RuntimeError('no licence server'), then a tiny launch",
     expect="exit 2, no traceback, nothing written: one line naming the module, RuntimeError, its message and where")
def test_plugin_raising_is_reported_as_its_failure(tmp_path):
    proc = _launch(tmp_path, "raising_plugin", "x = 1\nraise RuntimeError('no licence server')\n")
    line = _one_line_refusal(proc, tmp_path / "results")
    assert line.startswith("lodabench: error: plugin module 'raising_plugin' (from LODABENCH_PLUGINS=raising_plugin) "
                           "failed while being imported: RuntimeError: no licence server (at ")
    assert "raising_plugin.py:2)" in line


@pytest.mark.slow
@rel(case="a plugin replaces lora with replace=True",
     done="LODABENCH_PLUGINS=<module> whose import calls register_method(<a copy of lora's spec>, replace=True), "
          "tiny run to completion",
     expect="the run completes and its record's inputs.replaced_builtins names method lora, the built-in's module "
            "and the plugin module (inputs.plugins fingerprints the plugin)")
def test_plugin_replacing_lora_is_in_the_record(tmp_path, data_root, gpt2_tokenizer_dir):
    proc = _launch(tmp_path, "replace_lora", SHADOW_LORA.format(replace=", replace=True"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "results")
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete"
    assert record["inputs"]["replaced_builtins"] == [{"kind": "method", "name": "lora",
                                                      "builtin": "lodabench.methods.lora", "by": "replace_lora"}]
    assert [p["module"] for p in record["inputs"]["plugins"]] == ["replace_lora"]
