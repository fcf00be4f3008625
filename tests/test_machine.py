"""One ``machine_info`` for run records and bench records: the same fields, so two records of the
same machine compare field by field."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from lodabench.machine import machine_info
from lodabench.run.records import provenance


def test_run_record_and_bench_record_describe_the_machine_alike():
    run = provenance()["machine"]
    bench = machine_info("cpu")
    assert set(bench) <= set(run)  # a run record on a CUDA machine adds the GPU
    assert bench["device"] == "cpu" and run["device"] is None
    assert bench["torch"] == torch.__version__ and bench["torch_num_threads"] == torch.get_num_threads()
    assert bench["cpu_count"] and bench["cpu"]
    same = ("hostname", "platform", "python", "cpu", "cpu_count", "torch", "transformers", "peft")
    assert {k: run[k] for k in same} == {k: bench[k] for k in same}


# A fresh process: glibc's defaults first, then keep_freed_memory(True). Minor page faults of five
# training-like steps over a GPT-2-wide output (240 positions x 50,257 logits: ~48 MB tensors, over
# glibc's 32 MiB mmap ceiling, made and freed each step), after four untimed steps: with the defaults
# each large tensor is a fresh mapping whose pages fault in; kept, the heap's freed memory is reused.
_FAULTS = """
import json, resource, torch
from lodabench.machine import keep_freed_memory, machine_info

torch.manual_seed(0)
w = torch.randn(64, 50257, requires_grad=True)

def step():
    torch.log_softmax(torch.randn(240, 64) @ w, dim=-1).mean().backward()

def faults():
    for _ in range(4):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults()
said = keep_freed_memory(True)
kept = faults()
print(json.dumps({"default": default, "kept": kept, "said": said, "malloc": machine_info()["malloc"]}))
"""


@pytest.mark.skipif(not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
                    reason="mallopt is glibc's; elsewhere keep_freed_memory is a no-op")
def test_keep_freed_memory_reuses_the_heap_instead_of_faulting_fresh_pages():
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["default"] > 100_000, got  # every step maps its large tensors anew
    assert got["kept"] * 3 < got["default"], got  # measured 0-35k against ~240k
    assert got["said"] == got["malloc"] == "glibc keep-freed (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)"


def test_peft_version_is_read_without_importing_peft():
    import peft

    assert machine_info()["peft"] == peft.__version__  # from its installed metadata


_PAUSE = """
import gc, json
import lodabench.__main__  # what `python -m lodabench` runs first (main() is not called on import)
paused = not gc.isenabled()
from lodabench.run.spine import run  # what a job runs (entry.main imports it, then settles)
from lodabench.machine import settle_import_heap
settle_import_heap()
frozen = gc.get_freeze_count()
settle_import_heap()  # the second job of a multirun: nothing more is frozen
print(json.dumps({"paused": paused, "enabled": gc.isenabled(), "frozen": frozen, "again": gc.get_freeze_count()}))
"""


def test_the_collector_pauses_while_a_launch_imports_then_resumes_with_the_imports_frozen():
    """lodabench/__main__.py turns the collector off; entry.main freezes what the
    imports made and turns it on again (scripts/bench_import_gc.py: a tiny run's CPU ~1.18x less)."""
    out = subprocess.run([sys.executable, "-c", _PAUSE], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["paused"] and got["enabled"], got
    assert got["frozen"] > 100_000 and got["again"] == got["frozen"], got  # torch, transformers, hydra: ~400k


def test_a_process_that_did_not_pause_is_left_as_it_is():
    import gc

    from lodabench.machine import settle_import_heap

    frozen = gc.get_freeze_count()
    settle_import_heap()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_a_launched_job_resumes_the_collector_the_entry_paused(tmp_path):
    """A launch paused as `python -m lodabench` starts (here, in this process) ends with the collector on
    and the imports frozen: without the settle a run would go to its end with no cyclic collection."""
    import gc

    from runs_helpers import TINY_E2E, assert_refused, run_cli_here

    gc.disable()
    try:
        proc = run_cli_here([*TINY_E2E, "method.r=0"], tmp_path, check=False)  # refused in preflight, in the job
        assert_refused(proc, "method.r=0")
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()


def test_the_collector_resumes_before_hydra_launches_the_jobs(tmp_path, monkeypatch):
    """entry.main settles before Hydra launches: a sweep whose jobs run in other processes (joblib,
    submitit) must not leave its own process without collections for the whole sweep."""
    import gc

    from lodabench.run import entry
    from runs_helpers import TINY_E2E, run_cli_here

    seen = []
    monkeypatch.setattr(entry, "hydra_main", lambda task: seen.append((gc.isenabled(), gc.get_freeze_count())))
    gc.disable()
    try:
        run_cli_here(TINY_E2E, tmp_path)
        assert seen and seen[0][0] and seen[0][1] > 0, seen
    finally:
        gc.unfreeze()
        gc.enable()
