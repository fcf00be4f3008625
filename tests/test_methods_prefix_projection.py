"""Prefix tuning with Li & Liang's MLP reparameterisation (``method.projection=mlp``): numerical
equality with PEFT's ``prefix_projection=True`` given the same weights, the merge into a plain
prefix after training (same logits, no MLP left, checkpoint round trip), training, config errors
and parameter counts."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import PrefixTuningConfig, get_peft_model

from lodabench.errors import ConfigError
from lodabench.methods import apply_method, count_parameters, merge_method, method_of, trainable_state_dict
from lodabench.methods.checkpoint import load_trainable, save_trainable
from lodabench.methods.prefix import PrefixConfig, apply_prefix, merge_prefix_projection
from test_methods_prefix_prompt import ATOL, TASK, V, batch, tiny

torch.set_num_threads(1)
MLP = dict(init="random", projection="mlp", projection_hidden=16)


def _copy_into_peft(ours, peft_model) -> None:
    enc = peft_model.prompt_encoder["default"]
    with torch.no_grad():
        enc.embedding.weight.copy_(ours.projection.embedding.weight)
        for i in (0, 2):
            enc.transform[i].weight.copy_(ours.projection.transform[i].weight)
            enc.transform[i].bias.copy_(ours.projection.transform[i].bias)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_prefix_mlp_matches_peft_prefix_projection(family):
    base = tiny(family)
    x, mask = batch()
    torch.manual_seed(3)
    ours = apply_prefix(copy.deepcopy(base), PrefixConfig(num_virtual_tokens=4, **MLP)).eval()
    peft_cfg = PrefixTuningConfig(task_type=TASK[family], num_virtual_tokens=4, prefix_projection=True,
                                  encoder_hidden_size=16)
    peft_model = get_peft_model(copy.deepcopy(base), peft_cfg).eval()
    enc = peft_model.prompt_encoder["default"]
    # Same module shapes (LLaMA: both size P' by kv_heads * head_dim = 16, not hidden_size = 32).
    assert enc.embedding.weight.shape == ours.projection.embedding.weight.shape
    assert [tuple(p.shape) for p in enc.transform.parameters()] == \
        [tuple(p.shape) for p in ours.projection.transform.parameters()]
    _copy_into_peft(ours, peft_model)
    with torch.no_grad():
        got = ours(input_ids=x, attention_mask=mask).logits
        want = peft_model(input_ids=x, attention_mask=mask).logits
        plain = base(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(got, want, rtol=0, atol=ATOL)
    assert (got - plain).abs().max() > 1e-3  # the projected prefix really changes the output


@pytest.mark.parametrize("family", ["gpt2", "llama", "roberta"])
def test_merge_gives_identical_logits_and_holds_no_mlp(family):
    torch.manual_seed(4)
    model = apply_method(tiny(family), {"name": "prefix", "num_virtual_tokens": 3, **MLP}).eval()
    x, mask = batch()
    with torch.no_grad():
        before = model(input_ids=x, attention_mask=mask).logits
        want_prefix = model.projection().clone()
    merged = merge_prefix_projection(model)
    assert not hasattr(merged, "projection")
    assert not any(n.startswith("projection") for n, _ in merged.named_parameters())
    assert not any(isinstance(m, torch.nn.Linear) for n, m in merged.named_modules() if not n.startswith("base_model"))
    assert not any(isinstance(m, torch.nn.Embedding) for n, m in merged.named_modules()
                   if not n.startswith("base_model"))
    torch.testing.assert_close(merged.prefix.detach(), want_prefix, rtol=0, atol=0)
    assert {k for k in trainable_state_dict(merged) if not k.startswith("base_model.")} == {"prefix"}
    assert method_of(merged)["config"]["projection"] == "none"
    with torch.no_grad():
        after = merged(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_merged_checkpoint_loads_into_a_plain_prefix_model(tmp_path):
    torch.manual_seed(5)
    model = apply_method(tiny("gpt2"), {"name": "prefix", "num_virtual_tokens": 3, **MLP}).eval()
    x, mask = batch()
    with torch.no_grad():
        want = model(input_ids=x, attention_mask=mask).logits
    save_trainable(merge_prefix_projection(model), tmp_path / "merged.safetensors")
    plain = apply_method(tiny("gpt2"), {"name": "prefix", "num_virtual_tokens": 3, "init": "normal"}).eval()
    load_trainable(plain, tmp_path / "merged.safetensors")
    with torch.no_grad():
        got = plain(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_registry_merge_method_merges_the_projection():
    torch.manual_seed(6)
    model = apply_method(tiny("gpt2"), {"name": "prefix", "num_virtual_tokens": 3, **MLP}).eval()
    x, mask = batch()
    with torch.no_grad():
        want = model(input_ids=x, attention_mask=mask).logits
    merged = merge_method(model)
    assert not hasattr(merged, "projection") and method_of(merged) is None  # merged models carry no method
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=x, attention_mask=mask).logits, want, rtol=0, atol=0)
    plain = apply_method(tiny("gpt2"), {"name": "prefix", "num_virtual_tokens": 3, "init": "normal"})
    assert merge_method(plain).prefix is plain.prefix  # nothing to merge without a projection


def test_training_moves_only_the_projection_and_incremental_decoding_holds():
    base = tiny("gpt2")
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    torch.manual_seed(7)
    model = apply_prefix(base, PrefixConfig(num_virtual_tokens=4, **MLP))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "projection.embedding.weight", "projection.transform.0.weight", "projection.transform.0.bias",
        "projection.transform.2.weight", "projection.transform.2.bias"}
    x, mask = batch(seed=2)
    labels = x.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
    for k, v in base.state_dict().items():
        assert torch.equal(v, base_state[k]), f"base tensor {k} changed"
    model.eval()
    ids = torch.randint(3, V, (2, 7))
    with torch.no_grad():
        full = model(input_ids=ids).logits[:, -1]
        out = model(input_ids=ids[:, :6], use_cache=True)
        step = model(input_ids=ids[:, 6:], attention_mask=torch.ones(2, 7, dtype=torch.long),
                     past_key_values=out.past_key_values, use_cache=True).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=0, atol=ATOL)


def test_counts_trainable_mlp_versus_stored_prefix():
    """GPT-2 tiny: L=2, d=32, n=4, hidden=16."""
    n, L, d, h = 4, 2, 32, 16
    model = apply_method(tiny("gpt2"), {"name": "prefix", "num_virtual_tokens": n, **MLP})
    assert count_parameters(model)["trainable"] == n * d + (d * h + h) + (h * 2 * L * d + 2 * L * d)
    assert count_parameters(merge_prefix_projection(model))["trainable"] == 2 * L * d * n


@pytest.mark.parametrize(
    "cfg,msg",
    [
        (dict(projection="deep", init="random"), "method.projection='deep'"),
        (dict(projection="mlp", init="random", projection_hidden=0), "method.projection_hidden=0"),
        (dict(projection="mlp", init="vocab_kv"), "set method.init=random"),
        (dict(projection="none", init="random"), "method.init=random is the init of method.projection=mlp"),
    ],
)
def test_projection_config_errors(cfg, msg):
    with pytest.raises(ConfigError, match=msg):
        PrefixConfig(**cfg).validate(tiny("gpt2"))


def test_li_liang_overlay_composes_to_the_mlp_recipe():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from lodabench.methods import method_config
    from lodabench.paths import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=prefix_e2e"])
    GlobalHydra.instance().clear()
    conf = method_config(OmegaConf.to_container(cfg.method, resolve=True))
    assert (conf.projection, conf.projection_hidden, conf.num_virtual_tokens, conf.init) == ("mlp", 512, 10, "random")
    assert cfg.model.name == "gpt2-medium" and cfg.data.name == "e2e"
    assert (cfg.trainer.lr, cfg.trainer.batch_size, cfg.trainer.epochs) == (5e-5, 10, 5)
    assert cfg.decoding.num_beams == 5 and cfg.decoding.max_new_tokens == 100


def test_param_table_shows_trained_and_stored_prelayer_counts(tmp_path):
    """GPT-2 medium (L=24, d=1024), n=10, hidden 512: the MLP trains 25.75M, the merged prefix keeps
    2*L*d*n; the notes recompute why the published 0.35M is 0.1% of the model."""
    from lodabench.models.params import param_table, prelayer_note, write_table

    L, d, n, h = 24, 1024, 10, 512
    rows = {r["method"]: r for r in param_table(("gpt2-medium",), ["prefix"])}
    mlp = rows["prefix+mlp"]
    assert mlp["trainable"] == n * d + d * h + h + h * 2 * L * d + 2 * L * d == 25_750_016
    assert mlp["stored"] == rows["prefix"]["stored"] == rows["prefix"]["trainable"] == 2 * L * d * n == 491_520
    assert '"projection_hidden": 512' in mlp["config"]
    note = "\n".join(prelayer_note())
    assert "24*1024 = 24,576 per position" in note and "0.35M needs l_p+l_i = 14.2 (1e6 units)" in note
    assert "0.1% of the model's 354,823,168 = 354,823" in note and "774,030,080" in note
    _, md = write_table(list(rows.values()), tmp_path)
    text = md.read_text()
    assert "| gpt2-medium | prefix+mlp |" in text and "| 491,520 |" in text and "PreLayer" in text


@pytest.mark.slow
def test_run_keeps_and_evaluates_the_merged_prefix(tmp_path, data_root, gpt2_tokenizer_dir):
    """The CLI end to end with projection=mlp: training checkpoints hold P' and the MLP (resuming needs
    them); after training the run writes merged_prefix.safetensors = the MLP's output, plain prefix only."""
    import json

    from safetensors.torch import load_file

    from lodabench.methods.checkpoint import read_metadata
    from lodabench.methods.prefix import MERGED_FILE
    from runs_helpers import TINY_E2E, final_weights, run_cli_here, run_dirs

    args = [a for a in TINY_E2E if not a.startswith("method")] + [
        "method=prefix", "method.projection=mlp", "method.init=random", "method.projection_hidden=16",
        "method.num_virtual_tokens=4"]
    run_cli_here(args, tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    assert json.loads((run_dir / "record.json").read_text())["status"] == "complete"
    trained = final_weights(run_dir)
    assert set(trained) == {"projection.embedding.weight", "projection.transform.0.weight",
                            "projection.transform.0.bias", "projection.transform.2.weight",
                            "projection.transform.2.bias"}
    merged = load_file(str(run_dir / MERGED_FILE))
    assert set(merged) == {"prefix"}
    assert json.loads(read_metadata(run_dir / MERGED_FILE)["lodabench.config"])["projection"] == "none"
    hidden = torch.tanh(trained["projection.embedding.weight"] @ trained["projection.transform.0.weight"].T
                        + trained["projection.transform.0.bias"])
    flat = hidden @ trained["projection.transform.2.weight"].T + trained["projection.transform.2.bias"]
    torch.testing.assert_close(merged["prefix"].reshape(4, -1), flat, rtol=0, atol=1e-6)
