"""Subspace similarity phi (LoRA §7, CondLoRA eq. 2), conversion matrices, run loading, CLI smoke."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml
from methods_tiny import randomize_adapters, tiny
from safetensors.torch import save_file

from lodabench import methods
from lodabench.analysis import build_model, subspace
from lodabench.models.pretrained import read_model_conf
from lodabench.analysis.__main__ import main
from lodabench.errors import CheckpointError, ConfigError

G = torch.Generator().manual_seed(0)


def test_phi_of_a_matrix_with_itself_is_one():
    x = torch.randn(64, 8, generator=G)
    assert subspace.phi(x, x, 8, 8) == pytest.approx(1.0, abs=1e-12)
    # the span, not the basis: any invertible mixing of the columns gives the same subspace
    mix = torch.randn(8, 8, generator=G)
    assert subspace.phi(x, 3.0 * x @ mix, 8, 8) == pytest.approx(1.0, abs=1e-9)
    # nested spans: the top-2 directions lie in the top-8 span
    assert subspace.phi(x, x, 2, 8) == pytest.approx(1.0, abs=1e-12)


def test_phi_of_orthogonal_subspaces_is_zero():
    q, _ = torch.linalg.qr(torch.randn(64, 8, generator=G, dtype=torch.float64))
    x, y = q[:, :4] @ torch.randn(4, 4, generator=G, dtype=torch.float64), q[:, 4:]
    assert subspace.phi(x, y, 4, 4) == pytest.approx(0.0, abs=1e-12)
    # half overlap: span{e1, e2} vs span{e2, e3}
    e = torch.eye(5, dtype=torch.float64)
    assert subspace.phi(e[:, :2], e[:, 1:3], 2, 2) == pytest.approx(0.5, abs=1e-12)


def test_phi_of_random_high_dimensional_pairs_is_small():
    vals = [subspace.phi(torch.randn(1024, 8, generator=G), torch.randn(1024, 8, generator=G), 8, 8)
            for _ in range(5)]
    assert max(vals) < 0.05  # expectation 8 / 1024
    assert subspace.random_phi((1024, 8), (1024, 8), 8, 8, trials=3, generator=G) < 0.05


def test_phi_grid_agrees_with_phi_and_checks_ranks():
    x, y = torch.randn(32, 6, generator=G), torch.randn(32, 4, generator=G)
    grid = subspace.phi_grid(x, y, 6, 4)
    for i in (1, 3, 6):
        for j in (1, 4):
            assert grid[i - 1, j - 1].item() == pytest.approx(subspace.phi(x, y, i, j), abs=1e-10)
    with pytest.raises(ConfigError, match="i=7"):
        subspace.phi(x, y, 7, 4)
    with pytest.raises(ConfigError, match="all zeros"):
        subspace.left_basis(torch.zeros(8, 2))


def _with_method(name: str, family: str = "gpt2", r: int = 4, **extra):
    model = methods.apply_method(tiny(family), {"name": name, "r": r, "dropout": 0.0, **extra})
    randomize_adapters(model, scale=0.5)
    return model


@pytest.mark.parametrize("w0, convention", [("linear", "official"), ("input_major", "lodabench")])
@pytest.mark.parametrize("family", ["gpt2", "roberta"])
def test_condlora_conversion_matrices_are_its_shared_thetas(family, w0, convention):
    base = tiny(family)
    model = _with_method("condlora", family, w0=w0)
    adapters = subspace.adapters_from_state_dict(methods.trainable_state_dict(model), base, w0)
    assert sorted({s for _, s in adapters}) == ["q", "v"] and len(adapters) == 4
    theta = model.condlora["q"]
    for layer in (0, 1):
        p = adapters[(layer, "q")]
        # the rebuilt A, B are the ones the model uses
        adapter = model.transformer.h[layer].attn.c_attn.adapters["q"] if family == "gpt2" else \
            model.roberta.encoder.layer[layer].attention.self.query.adapters["q"]
        a, b = adapter.matrices(p.w0)
        assert torch.equal(p.a, a) and torch.equal(p.b, b) and p.orientation == w0
        c_a, c_b = subspace.conversion_matrices(p.w0, p.a, p.b, convention)
        assert torch.allclose(c_a.float(), theta.theta_A, atol=1e-3)
        assert torch.allclose(c_b.float(), theta.theta_B, atol=1e-3)
    rows, _ = subspace.conversion_analysis(adapters, None, None, "auto", trials=1, seed=0)
    assert all(r["phi"] == pytest.approx(1.0, abs=1e-6) for r in rows)
    # while Gaussian matrices of those shapes (64 x 4) barely overlap
    assert all(r["phi_random"] < 0.6 for r in rows if r["layer_a"] != r["layer_b"])


def test_lora_state_dict_names_give_a_and_b_per_layer():
    model = _with_method("lora")
    sd = methods.trainable_state_dict(model)
    adapters = subspace.adapters_from_state_dict(sd)
    assert sorted(adapters) == [(0, "q"), (0, "v"), (1, "q"), (1, "v")]
    key = "transformer.h.1.attn.c_attn.adapters.v.lora_B"
    assert torch.equal(adapters[(1, "v")].b, sd[key]) and adapters[(1, "v")].w0 is None
    with pytest.raises(CheckpointError, match="no adapter tensors"):
        subspace.adapters_from_state_dict({"classifier.weight": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match="base model"):
        subspace.adapters_from_state_dict(methods.trainable_state_dict(_with_method("condlora")))


def _fake_run(root, method: str, seed: int, **extra):
    """A run folder as run.py writes it: resolved config.yaml + an epoch checkpoint."""
    cfg = read_model_conf("tiny-gpt2")
    base = build_model(cfg, seed=seed)
    torch.manual_seed(seed)
    model = methods.apply_method(base, {"name": method, "r": 4, "dropout": 0.0, **extra})
    randomize_adapters(model, seed=seed + 10, scale=0.5)
    run = root / method / "seed0"
    (run / "checkpoints" / "epoch-2").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in methods.trainable_state_dict(model).items()},
              str(run / "checkpoints" / "epoch-2" / "trainable.safetensors"))
    (run / "config.yaml").write_text(yaml.safe_dump({"model": cfg, "method": {"name": method, **extra}, "seed": seed}))
    return run


def test_cli_two_runs_on_tiny_gpt2(tmp_path, capsys):
    a, b = _fake_run(tmp_path, "lora", 0), _fake_run(tmp_path, "condlora", 0)
    out = tmp_path / "out"
    assert main(["subspace", "--run", str(a), "--run-b", str(b), "--random-trials", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert len(rows) == 2 * 2 * 3  # layers x slots x {A, B, dW}
    assert all(0.0 <= float(r["phi"]) <= 1.0 + 1e-9 for r in rows)
    assert (out / "pairs_summary.csv").is_file()
    for label in ("lora-seed0", "condlora-seed0"):
        assert (out / f"conversion_{label}.csv").is_file() and (out / f"conversion_{label}.png").is_file()
    cond = list(csv.DictReader(open(out / "conversion_condlora-seed0.csv")))
    assert all(float(r["phi"]) > 0.999 for r in cond)  # rebuilt base = the run's base (same seed)
    assert "mean off-diagonal phi" in capsys.readouterr().out


def test_cli_uses_the_runs_condlora_w0(tmp_path, capsys):
    run = _fake_run(tmp_path, "condlora", 0, w0="input_major")
    out = tmp_path / "out"

    def conversion_phi(*extra):
        assert main(["subspace", "--run", str(run), "--random-trials", "1", "--out", str(out), *extra]) == 0
        rows = list(csv.DictReader(open(out / "conversion_condlora-seed0.csv")))
        return [float(r["phi"]) for r in rows if r["layer_a"] != r["layer_b"]]

    adapters, _ = subspace.load_run(run)
    assert {p.orientation for p in adapters.values()} == {"input_major"}  # read from config.yaml
    # A, B rebuilt in the run's orientation: its (lodabench) conversion matrices are theta in every layer
    assert all(p > 0.999 for p in conversion_phi("--convention", "lodabench"))
    assert all(p > 0.999 for p in conversion_phi())  # auto picks that convention itself
    # rebuilt in the other orientation (W_lin^T in A), they are not one map shared by the layers
    assert min(conversion_phi("--convention", "lodabench", "--w0", "linear")) < 0.99
    capsys.readouterr()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints"):
        subspace.find_checkpoint(tmp_path)


def test_checkpoint_metadata_gives_condlora_w0(tmp_path):
    import json

    from lodabench.methods.checkpoint import META_CONFIG, read_metadata, save_trainable

    base = build_model(read_model_conf("tiny-gpt2"), seed=0)
    model = methods.apply_method(base, {"name": "condlora", "r": 4, "w0": "input_major"})
    path = save_trainable(model, tmp_path / "ck.safetensors")
    adapters, _ = subspace.load_run(None, path, "tiny-gpt2", 0)
    assert {p.orientation for p in adapters.values()} == {"input_major"}
    # a CondLoRA checkpoint saved before method.w0 existed was input-major (the only orientation then)
    meta = read_metadata(path)
    old = {k: v for k, v in json.loads(meta[META_CONFIG]).items() if k != "w0"}
    old_path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in methods.trainable_state_dict(model).items()}, str(old_path),
              metadata={**meta, META_CONFIG: json.dumps(old)})
    assert {p.orientation for p in subspace.load_run(None, old_path, "tiny-gpt2", 0)[0].values()} == {"input_major"}
    # no metadata and no run config: CondLoRAConfig's default (the official orientation)
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in methods.trainable_state_dict(model).items()}, str(bare))
    assert {p.orientation for p in subspace.load_run(None, bare, "tiny-gpt2", 0)[0].values()} == {"linear"}
