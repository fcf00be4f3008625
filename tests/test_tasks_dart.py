"""DART end to end through the CLI with the dart_lora recipe: tiny GPT-2 trains on a slice of DART
(the train split is not staged, so a slice of the official dev file stands in for it), decodes a
slice of the test split and scores it with both scorers (LoRA's pipeline and the official DART one)."""

from __future__ import annotations

import json
import math

import pytest

from runs_helpers import run_cli_here, run_dirs

pytestmark = [pytest.mark.slow, pytest.mark.java]

N_EVAL = 5


@pytest.fixture(scope="module")
def dart_run(tmp_path_factory, data_root, gpt2_tokenizer_dir):
    root = tmp_path_factory.mktemp("dart_root")
    (root / "dart").mkdir()
    dev = data_root / "dart" / "dart-v1.1.1-full-dev.json"
    # train.json = the first 40 dev entries (written to tmp only; nothing is copied into the repo).
    (root / "dart" / "dart-v1.1.1-full-train.json").write_text(json.dumps(json.loads(dev.read_text())[:40]))
    for split in ("dev", "test"):
        name = f"dart-v1.1.1-full-{split}.json"
        (root / "dart" / name).symlink_to(data_root / "dart" / name)
    results = tmp_path_factory.mktemp("dart_runs")
    run_cli_here(["experiment=dart_lora", "model=tiny-gpt2", f"paths.data_root={root}", "data.max_train_examples=32",
             f"data.max_eval_items={N_EVAL}", "trainer.max_steps=3", "trainer.lr=1e-2", "trainer.warmup_steps=0",
             "trainer.batch_size=8", "trainer.max_dev_batches=1", "trainer.checkpoint_every=0",
             "decoding.num_beams=2", "decoding.max_new_tokens=12", "trainer.progress=false", "decoding.progress=false"],
            results)
    (run_dir,) = run_dirs(results)
    return run_dir


def test_dart_run_scores_with_both_scorers(dart_run):
    record = json.loads((dart_run / "record.json").read_text())
    assert record["status"] == "complete", record.get("error")
    metrics = json.loads((dart_run / "metrics.json").read_text())
    for key in ("BLEU", "METEOR", "TER", "official_BLEU", "official_METEOR", "official_TER"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), (key, metrics)
    cfg = record["config"]
    # LoRA paper Table 11, DART column.
    assert cfg["trainer"]["weight_decay"] == 0.0 and cfg["trainer"]["label_smoothing"] == 0.0
    assert cfg["method"]["dropout"] == 0.0 and cfg["decoding"]["length_penalty"] == 0.8
    assert record["train"]["global_step"] == 3


def test_dart_outputs_in_official_formats(dart_run):
    hyps = (dart_run / "hyp.txt").read_text(encoding="utf-8").split("\n")
    assert hyps[-1] == "" and len(hyps) - 1 == N_EVAL
    groups = (dart_run / "refs.txt").read_text(encoding="utf-8").strip("\n").split("\n\n")
    assert len(groups) == N_EVAL and all(g.strip() for g in groups)
