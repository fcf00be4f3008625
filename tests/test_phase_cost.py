"""The cost block (lodabench.train.phase_cost): per-phase memory reset on Linux and CUDA (mocked), token
counts, the totals over attempts, the table columns, and the block in a tiny run's record."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lodabench.train import phase_cost as pc
from lodabench.run.records import RunRecord

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not pc._clear_hwm(),
                                reason="VmHWM reset needs Linux /proc/self/clear_refs")


# ----------------------------------------------------------------------------- memory
@linux_only
def test_cpu_phase_peak_is_reset_between_phases():
    cpu = torch.device("cpu")
    first = pc.PhaseMeter(cpu).start()
    big = np.ones(300 * 2**20 // 8)  # 300 MiB, every page written
    del big
    one = first.stop()
    two = pc.PhaseMeter(cpu).start().stop()
    assert one["measure"] == two["measure"] == pc.VMHWM_MEASURE
    assert one["peak_mb"] - two["peak_mb"] > 250, (one, two)


def test_cpu_falls_back_to_maxrss_where_clear_refs_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(pc, "CLEAR_REFS", tmp_path / "no-such-dir" / "clear_refs")
    measure = pc.reset_peak(torch.device("cpu"))
    assert measure == pc.MAXRSS_MEASURE and "since it started" in measure
    assert pc.read_peak_mb(torch.device("cpu"), measure) > 10  # this process's ru_maxrss, in MiB


def test_cuda_phase_resets_and_reads_torch_peak(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(("reset", d)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: calls.append(("read", d)) or 3 * 2**30)
    gpu = torch.device("cuda:0")
    out = pc.PhaseMeter(gpu).start().stop()
    assert calls == [("reset", gpu), ("read", gpu)]
    assert out["peak_mb"] == 3072.0 and out["measure"] == pc.CUDA_MEASURE


# ----------------------------------------------------------------------------- tokens
def test_batch_tokens_counts_the_attention_mask_not_padding():
    from lodabench.tasks.collate import CausalLMCollator

    batch = CausalLMCollator()([{"input_ids": [5, 6, 7], "loss_mask": [0, 1, 1]},
                                {"input_ids": [5], "loss_mask": [1]}])
    assert batch["input_ids"].numel() == 6 and pc.batch_tokens(batch) == 4
    assert pc.batch_tokens({"input_ids": torch.zeros(2, 5, dtype=torch.long)}) == 10  # unpadded collator


# ----------------------------------------------------------------------------- the record
def _record(tmp_path, attempts):
    rec = RunRecord(tmp_path)
    rec.data["attempts"] = attempts
    return rec


def test_phase_notes_the_attempt_and_totals_the_run(tmp_path):
    earlier = {"n": 1, "cost": {"train_s": 10.0, "tokens_processed": 1000, "memory_measure": "m",
                                "peak_memory_mb": {"train": 900.0}}}
    old = {"n": 0, "superseded_by_force": True, "cost": {"train_s": 99.0, "tokens_processed": 1}}
    rec = _record(tmp_path, [old, earlier, {"n": 2}])
    pc.note_phase(rec, "train", {"seconds": 30.0, "peak_mb": 500.0, "measure": "m"}, {"tokens_processed": 5000})
    pc.note_run_cost(rec, train_tokens=4000, adapter_bytes=123)
    cost = json.loads((tmp_path / "record.json").read_text())["cost"]
    assert cost["train_s"] == 40.0 and cost["train_tokens"] == 4000 and cost["adapter_bytes"] == 123
    assert cost["train_tokens_per_s"] == 150.0  # (1000 + 5000) / (10 + 30): the superseded attempt left out
    assert cost["peak_memory_mb"] == {"train": 900.0, "decode": None} and cost["eval_s"] is None
    assert rec.attempts[-1]["cost"]["train_s"] == 30.0


def test_interrupted_phase_still_records_its_seconds(tmp_path):
    rec = _record(tmp_path, [{"n": 1}])
    with pytest.raises(KeyboardInterrupt), pc.phase(rec, "train", "cpu", lambda: {"tokens_processed": 7}):
        raise KeyboardInterrupt
    assert rec.data["cost"]["train_s"] is not None and rec.attempts[0]["cost"]["tokens_processed"] == 7


def test_ranks_without_a_record_measure_but_write_nothing():
    with pc.phase(SimpleNamespace(), "decode", "cpu") as meter:
        pass
    assert meter.measure in (pc.VMHWM_MEASURE, pc.MAXRSS_MEASURE)


def test_adapter_bytes_is_the_latest_checkpoint_file(tmp_path):
    (tmp_path / "step-0000004").mkdir()
    (tmp_path / "step-0000004" / "trainable.safetensors").write_bytes(b"x" * 321)
    assert pc.adapter_bytes(tmp_path) is None  # no latest.json yet
    (tmp_path / "latest.json").write_text(json.dumps({"dir": "step-0000004"}))
    assert pc.adapter_bytes(tmp_path) == 321


def test_cost_columns_are_blank_without_a_cost_block():
    assert set(pc.cost_columns({})) == {f"cost_{c}" for c in pc.COLUMNS}
    assert all(v == "" for v in pc.cost_columns({"wall_time_s": 3}).values())
    assert pc.cost_columns({"cost": {"train_s": "abc", "eval_s": True}})["cost_train_s"] == ""  # damaged: blank
    cols = pc.cost_columns({"cost": {"train_s": 2.5, "peak_memory_mb": {"train": 80.0, "decode": None}}})
    assert cols["cost_train_s"] == 2.5 and cols["cost_peak_train_mb"] == 80.0 and cols["cost_peak_decode_mb"] == ""


def test_table_csv_has_cost_means_and_blanks_for_older_records(tmp_path):
    import pandas as pd
    from test_tables import write_run

    from lodabench.results import tables
    runs = tmp_path / "runs"
    for seed, train_s in ((110, 10.0), (111, 20.0)):
        d = write_run(runs, "lora", "experiment=e2e_lora", seed, "complete", {"BLEU": 0.7})
        rec = json.loads((d / "record.json").read_text())
        (d / "record.json").write_text(json.dumps({**rec, "cost": {"train_s": train_s, "adapter_bytes": 100}}))
    write_run(runs, "loda", "experiment=e2e_loda", 110, "complete", {"BLEU": 0.7})  # no cost block
    tables.build(runs, tmp_path / "out", None, plots=False)
    df = pd.read_csv(tmp_path / "out" / "table1_e2e__gpt2-medium.csv", keep_default_na=False).set_index("method")
    assert float(df.loc["lora", "cost_train_s"]) == 15.0 and float(df.loc["lora", "cost_adapter_bytes"]) == 100
    assert df.loc["loda", "cost_train_s"] == "" and df.loc["lora", "cost_eval_s"] == ""


def _final_state(out):
    run = out / "run" / "checkpoints"
    latest = json.loads((run / "latest.json").read_text())["dir"]
    return json.loads((run / latest / "trainer_state.json").read_text())


@pytest.mark.slow
def test_two_ranks_count_the_same_tokens_as_one_process(tmp_path):
    import ddp_worker
    from test_ddp import torchrun

    ddp_worker.train(tmp_path / "single", batch_size=5)
    torchrun([str(tmp_path / "ddp"), "--batch-size", "5", "--grad-accum", "2"])  # uneven shares, an empty micro-step
    single, ddp = _final_state(tmp_path / "single"), _final_state(tmp_path / "ddp")
    assert ddp["train_tokens"] == single["train_tokens"] > 0


# ----------------------------------------------------------------------------- a tiny run
@pytest.mark.slow
def test_tiny_run_record_holds_the_cost_block(tmp_path, complete_run):
    from runs_helpers import TINY_E2E

    # the session's complete run of this command (conftest.complete_run): a fresh CLI run, copied here
    _, run_dir = complete_run([*TINY_E2E, "decoding.batch_size=2"], tmp_path / "results")
    rec = json.loads((run_dir / "record.json").read_text())
    cost = rec["cost"]
    print("tiny run cost:", json.dumps(cost))
    assert cost["train_s"] > 0 and cost["eval_s"] > 0
    assert 0 < cost["train_tokens"] <= 6 * 8 * 512  # 6 steps of 8 rows, each at most trainer.max_length
    assert cost["train_tokens_per_s"] == pytest.approx(cost["train_tokens"] / cost["train_s"], rel=1e-2)
    assert cost["peak_memory_mb"]["train"] > 0 and cost["peak_memory_mb"]["decode"] > 0
    assert cost["memory_measure"] in (pc.VMHWM_MEASURE, pc.MAXRSS_MEASURE, pc.CUDA_MEASURE)
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]
    assert cost["adapter_bytes"] == (run_dir / "checkpoints" / latest / "trainable.safetensors").stat().st_size
    assert rec["peak_memory"] and rec["wall_time_s"] > 0  # the older fields stay for old readers
