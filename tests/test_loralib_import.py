"""import_loralib / init_from=loralib:PATH against loralib (PyPI) as the oracle (issue #29).

The references are loralib's own layers, merged (eval() with merge_weights=True folds B A into
the weight), put in the place of the HF projections: the imported model must give their logits.
Factors are random and nonzero (B starts at zero in training, which would hide a wrong split).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

import lodabench
from lodabench.errors import CheckpointError
from lodabench.methods.checkpoint import load_warm_start
from methods_tiny import batch, logits, tiny
from runs_helpers import final_weights, run_cli_here, run_dirs

D, R, ALPHA = 64, 2, 8.0  # methods_tiny's hidden size; a rank and alpha of our choosing


def _factors(ml, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ml.lora_A.copy_(torch.randn(ml.lora_A.shape, generator=g) * 0.1)
        ml.lora_B.copy_(torch.randn(ml.lora_B.shape, generator=g) * 0.1)


def _gpt2_reference(prefix: str):
    """A tiny GPT-2 whose c_attn are loralib MergedLinear (q/v, fan_in_fan_out) as LoRA's NLG model.py
    has them, merged; and the {'model_state_dict': lora_state_dict} that gpt2_ft.py would save."""
    loralib = pytest.importorskip("loralib")
    ref, sd = tiny("gpt2"), {}
    for i, blk in enumerate(ref.transformer.h):
        ml = loralib.MergedLinear(D, 3 * D, r=R, lora_alpha=ALPHA, enable_lora=[True, False, True],
                                  fan_in_fan_out=True, merge_weights=True)
        with torch.no_grad():
            ml.weight.copy_(blk.attn.c_attn.weight)  # (in, 3d): Conv1D's storage, which fan_in_fan_out expects
            ml.bias.copy_(blk.attn.c_attn.bias)
        _factors(ml, seed=10 + i)
        sd.update({f"{prefix}transformer.h.{i}.attn.c_attn.{k}": v.detach().clone()
                   for k, v in loralib.lora_state_dict(ml).items()})
        blk.attn.c_attn = ml
        ml.eval()  # loralib's train() returns None, so not chained
        assert ml.merged
    return ref, {"model_state_dict": sd}


def _roberta_reference():
    """A tiny RoBERTa with loralib Linear query/value (examples/NLU's modeling_roberta) merged, and
    the plain state dict run_glue.py releases: the factors plus the classification head."""
    loralib = pytest.importorskip("loralib")
    ref, sd = tiny("roberta"), {}
    for i, layer in enumerate(ref.roberta.encoder.layer):
        for j, attr in enumerate(("query", "value")):
            old = getattr(layer.attention.self, attr)
            ml = loralib.Linear(D, D, r=R, lora_alpha=ALPHA, merge_weights=True)
            with torch.no_grad():
                ml.weight.copy_(old.weight)
                ml.bias.copy_(old.bias)
            _factors(ml, seed=20 + 2 * i + j)
            sd.update({f"roberta.encoder.layer.{i}.attention.self.{attr}.{k}": v.detach().clone()
                       for k, v in loralib.lora_state_dict(ml).items()})
            setattr(layer.attention.self, attr, ml)
            ml.eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in ref.classifier.named_parameters():  # a trained head differs from the fresh one
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
            sd[f"classifier.{name}"] = p.detach().clone()
    return ref, sd


@pytest.mark.parametrize("prefix", ["", "module."])
def test_gpt2_merged_linear_imports_exactly(tmp_path, prefix):
    ref, ckpt = _gpt2_reference(prefix)
    torch.save(ckpt, tmp_path / "gpt2_lora.pt")
    model = lodabench.import_loralib(tiny("gpt2"), tmp_path / "gpt2_lora.pt", alpha=ALPHA)
    b = batch()
    expected = logits(ref, b)
    assert (expected - logits(tiny("gpt2"), b)).abs().max() > 1e-2  # the update is visible in the logits
    torch.testing.assert_close(logits(model, b), expected, rtol=0, atol=1e-6)
    opts = lodabench.method_options(model)
    assert (opts["r"], opts["alpha"], sorted(opts["targets"])) == (R, ALPHA, ["q", "v"])
    assert not model.training  # tiny() is in eval mode; the import keeps it


def test_roberta_query_value_and_head_import_exactly(tmp_path):
    ref, sd = _roberta_reference()
    torch.save(sd, tmp_path / "roberta_lora.bin")
    model = lodabench.import_loralib(tiny("roberta"), tmp_path / "roberta_lora.bin", alpha=ALPHA)
    b = batch()
    torch.testing.assert_close(logits(model, b), logits(ref, b), rtol=0, atol=1e-6)


def test_whole_model_save_loads_the_factors_and_lists_the_rest(tmp_path):
    """gpt2_ft.py's last save is model.state_dict(): base weights are not loaded, only listed."""
    ref, ckpt = _gpt2_reference("module.")
    base = {f"module.{k}": v for k, v in tiny("gpt2").state_dict().items()}
    torch.save({"model_state_dict": {**base, **ckpt["model_state_dict"]}}, tmp_path / "model.26289.pt")
    model = lodabench.apply_method(tiny("gpt2"), "lora", r=R, alpha=ALPHA, dropout=0.0)
    report = load_warm_start(model, f"loralib:{tmp_path / 'model.26289.pt'}")
    assert "transformer.wte.weight" in report["ignored"] and report["dropped"] == {} and report["fresh"] == []
    assert (report["source"], report["r"], report["alpha"], report["targets"]) == ("loralib", R, ALPHA, ["q", "v"])
    torch.testing.assert_close(logits(model.eval(), batch()), logits(ref, batch()), rtol=0, atol=1e-6)


def _tiny_gpt2_ckpt(path, d=D, layers=2, r=R, drop=()):
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i in range(layers):
        sd[f"transformer.h.{i}.attn.c_attn.lora_A"] = torch.randn(2 * r, d, generator=g) * 0.1
        sd[f"transformer.h.{i}.attn.c_attn.lora_B"] = torch.randn(2 * d, r, generator=g) * 0.1
    for k in drop:
        sd.pop(k)
    torch.save({"model_state_dict": sd}, path)
    return path


@pytest.mark.parametrize("make, needles", [
    (lambda p: _tiny_gpt2_ckpt(p, d=32), ["transformer.h.0.attn.c_attn.lora_A", "(2, 32) vs model (2, 64)", "gpt2-medium"]),
    (lambda p: _tiny_gpt2_ckpt(p, layers=1), ["missing key", "transformer.h.1.attn.c_attn.lora_A", "Fix:"]),
    (lambda p: _tiny_gpt2_ckpt(p, drop=["transformer.h.0.attn.c_attn.lora_B"]),
     ["missing key", "transformer.h.0.attn.c_attn.lora_B", "Fix:"]),
    (lambda p: torch.save({"model_state_dict": {"transformer.wte.weight": torch.zeros(3, 4)}}, p) or p,
     ["unknown layout", "no LoRA factor", "Fix:"]),
    (lambda p: torch.save({"model_state_dict": {"transformer.h.0.mlp.c_fc.lora_A": torch.zeros(2, 4)}}, p) or p,
     ["transformer.h.0.mlp.c_fc.lora_A", "does not know", "Fix:"]),
    (lambda p: torch.save([torch.zeros(2)], p) or p, ["unknown layout", "list", "Fix:"]),
    (lambda p: p.write_bytes(b"not a checkpoint") and p, ["not a readable torch checkpoint", "Fix:"]),
    (lambda p: torch.save({"model_state_dict": {"transformer.h.0.attn.c_attn.lora_A": torch.zeros(6, 64),
                                               "transformer.h.0.attn.c_attn.lora_B": torch.zeros(192, 2)}}, p) or p,
     ["not loralib's MergedLinear q/v layout", "transformer.h.0.attn.c_attn.lora_A (6, 64)"]),
])
def test_bad_checkpoints_name_file_key_and_fix(tmp_path, make, needles):
    path = make(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        lodabench.import_loralib(tiny("gpt2"), path, alpha=ALPHA)
    assert str(path) in str(err.value)
    for needle in needles:
        assert needle in str(err.value)


def test_head_of_another_label_count_is_refused_by_import(tmp_path):
    _, sd = _roberta_reference()
    sd["classifier.out_proj.weight"] = torch.zeros(2, D)  # an MRPC head into a 3-label model
    torch.save(sd, tmp_path / "r.bin")
    with pytest.raises(CheckpointError, match=r"classifier.out_proj.weight.*\(2, 64\) vs model \(3, 64\).*label count"):
        lodabench.import_loralib(tiny("roberta"), tmp_path / "r.bin", alpha=ALPHA)


def test_init_from_needs_lora_with_the_files_rank(tmp_path):
    path = _tiny_gpt2_ckpt(tmp_path / "c.pt")
    for name, opts, needle in [("lora", {"r": 4}, "method.r=2 method.targets=[q,v]"),
                               ("lora", {"r": R, "targets": ["q"]}, "method.targets=[q,v]"),
                               ("dora", {"r": R}, "method=lora method.r=2")]:
        model = lodabench.apply_method(tiny("gpt2"), name, **opts)
        with pytest.raises(CheckpointError, match=needle.replace("[", r"\[")):
            load_warm_start(model, f"loralib:{path}")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_warm_start(lodabench.apply_method(tiny("gpt2"), "lora", r=R), f"loralib:{tmp_path / 'nope.pt'}")


def test_report_shows_an_authors_checkpoint_run_as_such():
    """Beside the paper's number, such a run reads as the authors' weights, not as a 0-epoch short run."""
    from lodabench.models.pretrained import read_model_conf
    from lodabench.results.setting import paper_setting_gaps

    overrides = ["experiment=e2e_lora", "trainer.epochs=0"]
    record = {"config": {"trainer": {"epochs": 0}, "model": read_model_conf("gpt2-medium")}}
    assert any("trainer.epochs" in g for g in paper_setting_gaps(record, overrides, check_counts=False))
    record["warm_start"] = {"source": "loralib", "path": "/ckpt/gpt2_md_lora_e2e.pt", "sha256": "ab" * 32,
                            "r": 4, "alpha": 32.0}
    assert paper_setting_gaps(record, overrides, check_counts=False) == [
        "the LoRA authors' checkpoint gpt2_md_lora_e2e.pt (sha256 abababababab, r=4, alpha=32.0) scored by our "
        "pipeline, not trained here"]


@pytest.mark.slow
def test_init_from_loralib_epochs_0_decodes_and_scores(tmp_path):
    """The one command a GPU user runs on gpt2_md_lora_e2e.pt, on tiny-gpt2 (n_embd 64, 2 layers)."""
    path = _tiny_gpt2_ckpt(tmp_path / "tiny_lora_e2e.pt")
    run_cli_here(["model=tiny-gpt2", "method=lora", f"method.r={R}", f"method.alpha={ALPHA}",
             f"init_from=loralib:{path}", "trainer.epochs=0", "data.max_eval_items=6", "data.eval_split=dev",
             "decoding=greedy", "decoding.max_new_tokens=16", "trainer.progress=false",
             "decoding.progress=false"], tmp_path / "results")
    (run_dir,) = run_dirs(tmp_path / "results")
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete", record.get("error")
    warm = record["warm_start"]
    from lodabench.methods.loralib_import import read_layout, sha256_of
    assert (warm["source"], warm["path"], warm["sha256"]) == ("loralib", str(path), sha256_of(path))
    assert (warm["r"], warm["alpha"], warm["targets"]) == (R, ALPHA, ["q", "v"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["BLEU"] is not None and metrics["checkpoint"] == "last (step 0)"
    assert (run_dir / "hyp.txt").read_text().count("\n") == 6
    scored = final_weights(run_dir)  # the weights decoded are the file's factors, untouched
    layout = read_layout(path)
    assert set(scored) == set(layout.tensors)
    for k, v in layout.tensors.items():
        torch.testing.assert_close(scored[k], v, rtol=0, atol=0)
