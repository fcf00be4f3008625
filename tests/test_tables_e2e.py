"""Sweeps feed the tables end to end: a real Hydra multirun on the tiny model, then `lodabench tables`."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from lodabench.paths import REPO_ROOT
from runs_helpers import run_cli, run_cli_here, run_dirs

pytestmark = pytest.mark.slow

# Same tiny slices as the spine test; experiment overlays bring the paper recipe, the rest shrinks it.
# Greedy decoding: beam 10 on a barely trained tiny model ends every hypothesis at once (empty
# outputs, for which the official NIST is undefined). Two optimizer steps: the tables read records, not
# how well the tiny model trained (each step costs ~0.5 s CPU: GPT-2's 50k-token vocabulary).
TINY = ["model=tiny-gpt2", "method.r=8", "data.max_train_examples=64", "data.max_eval_items=4",
        "data.eval_split=dev", "trainer.max_steps=2", "trainer.lr=1e-2", "trainer.warmup_steps=0",
        "trainer.max_dev_batches=1", "trainer.checkpoint_every=1", "decoding.num_beams=1",
        "decoding.max_new_tokens=16",
        "trainer.progress=false", "decoding.progress=false"]


def test_multirun_two_methods_two_seeds_then_tables(tmp_path, data_root, gpt2_tokenizer_dir):
    run_cli_here(["-m", "experiment=e2e_lora,e2e_loda", "seed=110,111", *TINY], tmp_path, timeout=900)
    records = [json.loads((d / "record.json").read_text()) for d in run_dirs(tmp_path)]
    assert len(records) == 4 and all(r["status"] == "complete" for r in records)
    out = tmp_path / "tables"
    proc = subprocess.run([sys.executable, "-m", "lodabench.cli", "tables", "--runs-dir", str(tmp_path / "runs"),
                           "--out-dir", str(out), "--no-plots"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(out / "table1_e2e__tiny-gpt2.csv", keep_default_na=False)
    # Labels carry the non-recipe overrides in brackets, e.g. "LoRA (r=8, ...)".
    df["method"] = df["label"].str.split(" ").str[0]
    assert sorted(df["method"]) == ["LoDA", "LoRA"] and set(df["n"]) == {2}
    # The cell is the mean over the two seeds of what the records hold (BLEU x100 as LoDA Table 1).
    lora_bleu = [100 * r["metrics"]["BLEU"] for r in records if r["config"]["method"]["name"] == "lora"]
    assert float(df[df.method == "LoRA"]["BLEU_mean"].iloc[0]) == pytest.approx(sum(lora_bleu) / 2)
    for suffix in (".md", ".tex"):
        assert (out / f"table1_e2e__tiny-gpt2{suffix}").is_file()
    # The paired seed x item test against LoRA (report_paired): delta = difference of the recorded means.
    paired = pd.read_csv(out / "paired__table1_e2e__tiny-gpt2.csv")
    bleu = paired[paired.metric == "BLEU"].iloc[0]
    loda_bleu = [100 * r["metrics"]["BLEU"] for r in records if r["config"]["method"]["name"] == "loda"]
    assert bleu.delta == pytest.approx((sum(loda_bleu) - sum(lora_bleu)) / 2)
    assert bleu.ci_lo <= bleu.delta <= bleu.ci_hi and bleu.family_m == paired.p.notna().sum()


def test_killed_job_leaves_others_intact_and_is_marked(tmp_path, data_root, gpt2_tokenizer_dir):
    # Job 1 stops after 2 steps and completes; job 2 is killed (abrupt exit, as kill -9) at step 3.
    # With Hydra's basic launcher the jobs share one process, so the kill also ends the sweep.
    args = ["-m", "experiment=e2e_lora", "trainer.max_steps=2,4", *[a for a in TINY if "max_steps" not in a]]
    proc = run_cli(args, tmp_path, env={"LODABENCH_FAULT_AFTER_STEP": "3"}, check=False, timeout=900)
    assert proc.returncode != 0
    by_steps = {json.loads((d / "record.json").read_text())["config"]["trainer"]["max_steps"]: d
                for d in run_dirs(tmp_path)}
    assert json.loads((by_steps[2] / "record.json").read_text())["status"] == "complete"
    assert (by_steps[2] / "metrics.json").is_file()
    assert json.loads((by_steps[4] / "record.json").read_text())["status"] == "running"
    from lodabench.results import tables
    out = tmp_path / "tables"
    tables.build(tmp_path / "runs", out, None, plots=False)
    df = pd.read_csv(out / "table1_e2e__tiny-gpt2.csv", keep_default_na=False)
    killed = df[df.label.str.contains("max_steps=4")].iloc[0]
    done = df[df.label.str.contains("max_steps=2")].iloc[0]
    assert killed["flag"] == "†" and "1 running" in killed["status"] and killed["n"] == 0
    assert killed["BLEU"].startswith("incomplete")
    assert done["n"] == 1 and done["flag"] == "" and float(done["BLEU"]) >= 0
