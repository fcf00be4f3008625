"""Reliability of values and their combinations (issue #27, "Ranges"): a number outside its field's
domain (NaN, inf, a probability above 1, a beta >= 1, a negative count, a seed past the RNGs' range)
and the combinations that used to fail only after training are refused by the CLI before any model
loads or step is taken: exit 2, the full key and the allowed range named, no traceback. And a tiny
run's files honour the umask.

Every test is one row of ``results/reliability.md`` (tests/conftest.py).
"""

from __future__ import annotations

import stat

import pytest

from runs_helpers import TINY_E2E, assert_refused, run_cli_here

rel = pytest.mark.reliability


def _refused(args: list[str], tmp_path, *expected: str) -> str:
    """Run the CLI (in this process: run_cli_here, under a second a case, so `make test-fast` runs every case);
    assert it stops before training with exit 2, each expected text and no traceback."""
    results = tmp_path / "results"
    other_method = any(a.startswith("method=") for a in args)  # then TINY_E2E's method.r=8 is not a key of it
    base = [a for a in TINY_E2E if not (other_method and a.startswith("method"))]
    proc = run_cli_here([*base, *args], results, check=False)
    assert_refused(proc, *expected)
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    assert not list(results.rglob("checkpoints")) and not list(results.rglob("hyp.txt"))
    return proc.stderr


OUT_OF_RANGE = [
    (["trainer.lr=nan"], "trainer.lr=nan", "a finite number > 0"),
    (["trainer.lr=-inf"], "trainer.lr=-inf", "a finite number > 0"),
    (["trainer.label_smoothing=1.5"], "trainer.label_smoothing=1.5", "[0, 1)"),
    (["trainer.adam_beta2=1.0"], "trainer.adam_beta2=1.0", "[0, 1)"),
    (["trainer.warmup_ratio=2"], "trainer.warmup_ratio=2.0", "[0, 1]"),
    (["trainer.epochs=-1"], "trainer.epochs=-1", "an integer >= 0"),
    (["trainer.num_threads=0"], "trainer.num_threads=0", "a positive integer"),
    (["seed=99999999999999999999"], "seed=99999999999999999999", "[0, 4294967295]"),
    (["method.dropout=1.0"], "method.dropout=1.0", "[0, 1)"),
    (["method=s_loda", "method.keep=1.5"], "method.keep=1.5", "(0, 1]"),
    (["decoding.length_penalty=inf"], "decoding.length_penalty=inf", "a finite number"),
]


def _case(args, key, allowed):
    return pytest.param(args, key, allowed, id=" ".join(args))


@rel(case="number outside its field's domain (NaN, inf, probability or ratio above 1, beta >= 1, negative "
          "epochs, zero threads, seed past the RNGs' range)",
     done="python -m lodabench <tiny run> with each of: " + "; ".join(" ".join(a) for a, _, _ in OUT_OF_RANGE),
     expect="exit 2 before any model loads: '<full key>=<value>: must ... Fix: set <full key> to <range> "
            "(default ...)'; no traceback, no checkpoint")
@pytest.mark.parametrize("args,key,allowed", [_case(*c) for c in OUT_OF_RANGE])
def test_out_of_range_value_refused_before_training(tmp_path, args, key, allowed):
    _refused(args, tmp_path, f"{key}: must", allowed, f"Fix: set {key.split('=')[0]} to")


@rel(case="selection rule that needs checkpoints that are not kept",
     done="eval_checkpoint=best_dev, and selection.epochs=[1], each with trainer.keep_epoch_checkpoints=false",
     expect="exit 2 before training naming trainer.keep_epoch_checkpoints=false and the fix; no traceback")
@pytest.mark.parametrize("args", [["eval_checkpoint=best_dev"], ["selection.epochs=[1]", "trainer.epochs=1"]],
                         ids=["best_dev", "selection.epochs"])
def test_selection_needs_kept_checkpoints(tmp_path, args, data_root):
    _refused([*args, "trainer.keep_epoch_checkpoints=false"], tmp_path,
             "trainer.keep_epoch_checkpoints=false does not keep", "Fix: set trainer.keep_epoch_checkpoints=true")


@rel(case="eval_checkpoint=best_dev on a run that trains nothing (trainer.max_steps=0)",
     done="python -m lodabench <tiny run> eval_checkpoint=best_dev trainer.max_steps=0",
     expect="exit 2 before training (it used to fail after 'training': no dev loss to select on)")
def test_best_dev_without_training(tmp_path, data_root):
    _refused(["eval_checkpoint=best_dev", "trainer.max_steps=0"], tmp_path, "trainer.max_steps=0 trains none")


@rel(case="metric that needs more items than asked (CIDEr on one E2E item)",
     done="python -m lodabench <tiny run> data.max_eval_items=1",
     expect="exit 2 before training: 'e2e: CIDEr needs at least 2 scored items, but the dev split gives 1 "
            "(data.max_eval_items=1)' (CIDEr's IDF over one item makes every score 0)")
def test_metric_needs_more_items(tmp_path, data_root):
    _refused(["data.max_eval_items=1"], tmp_path, "CIDEr needs at least 2 scored items",
             "Fix: set data.max_eval_items >= 2")


@rel(case="prompt longer than the position table",
     done="method=prompt trainer.max_length=1010 on tiny-gpt2 (1024 positions); and decoding.max_new_tokens=1100",
     expect="exit 2 before the model loads, naming the keys, their sum and the model's positions; no traceback")
@pytest.mark.parametrize("args,text", [
    (["method=prompt", "trainer.max_length=1010"],
     "method.num_virtual_tokens=20 + trainer.max_length=1010 = 1030 positions, but model=tiny-gpt2 has 1024"),
    (["decoding.max_new_tokens=1100"], "decoding.max_new_tokens=1100 = 1101 positions"),
], ids=["prompt", "max_new_tokens"])
def test_sequence_longer_than_position_table(tmp_path, args, text, data_root):
    _refused(args, tmp_path, text)


@pytest.mark.slow
@rel(case="result files under umask 022",
     done="a tiny E2E run launched with umask 022",
     expect="every file of the run directory (record.json, metrics.json, hyp.txt, checkpoints) is mode 0644, "
            "not mkstemp's 0600")
def test_tiny_run_files_honour_umask(tmp_path, complete_run):
    # the session's complete run of this command, launched under umask 022 (conftest.complete_run);
    # the copy keeps each file's mode (shutil.copytree copies permission bits)
    _, run_dir = complete_run([*TINY_E2E, "decoding.batch_size=2"], tmp_path / "results")
    modes = {str(p.relative_to(run_dir)): oct(stat.S_IMODE(p.stat().st_mode))
             for p in run_dir.rglob("*") if p.is_file()}
    assert {"record.json", "metrics.json", "hyp.txt"} <= set(modes), sorted(modes)
    assert any(k.startswith("checkpoints/") for k in modes), sorted(modes)
    assert {k: m for k, m in modes.items() if m != "0o644"} == {}
