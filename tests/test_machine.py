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
