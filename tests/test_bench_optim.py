"""The ``optim`` bench suite's code path (quick sizes; no timing assertion: the >= 2x bar is a goal in the
record, measured by ``python -m lodabench.bench --suites optim``, docs/benchmarks.md)."""

from __future__ import annotations

from lodabench.bench.cli import main
from lodabench.bench.optim import lora_shapes
from lodabench.io import read_json


def test_gpt2_medium_lora_shapes_are_96_tensors():
    shapes = lora_shapes(24, 1024, 4, ("q", "v"))
    assert len(shapes) == 96 and shapes[:2] == [(4, 1024), (1024, 4)]


def test_optim_suite_writes_loop_fused_speedup_and_its_goal(tmp_path):
    out = tmp_path / "optim.json"
    assert main(["--quick", "--suites", "optim", "--out", str(out)]) == 0
    record = read_json(out)
    section = record["optim"]
    assert section["loop_ms"] > 0 and section["fused_ms"] > 0 and section["bit_identical"] is True
    assert section["speedup"] == section["speedup_stats"]["median"] and section["tensors"] == 8
    goal = [g for g in record["goals"] if g["goal"].startswith("lora_adamw (fused)")]
    assert len(goal) == 1 and goal[0]["measured"] == section["speedup"] and goal[0]["target"] == ">= 2.0"
    assert "## Optimizer step" in out.with_suffix(".md").read_text()
