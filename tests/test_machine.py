"""One ``machine_info`` for run records and bench records: the same fields, so two records of the
same machine compare field by field."""

from __future__ import annotations

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
