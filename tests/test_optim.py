"""trainer.optimizer: LoRA's AdamW rule (lodabench.train.optim.LoRAAdamW) vs torch AdamW, config errors,
bit-exact resume of both, and the experiment overlays' choice."""

from __future__ import annotations

import io
import math

import pytest
import torch
from safetensors.torch import load_file

from lodabench.errors import CheckpointError, ConfigError
from lodabench.train.optim import OPTIMIZERS, FusedLoRAAdamW, LoRAAdamW, build_optimizer
from lodabench.paths import CONF_DIR
from lodabench.config.schema import defaults_of
from methods_tiny import InjectedCrash, lora_trainer

torch.set_num_threads(1)


def _rule_float64(p, grads, lr, b1, b2, eps, wd, correct_bias=True):
    """LoRA's update written out in float64 (optim.py docstring), one step per gradient."""
    p, m, v = p.double().clone(), torch.zeros_like(p, dtype=torch.float64), torch.zeros_like(p, dtype=torch.float64)
    for t, g in enumerate(grads, 1):
        g = g.double()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        size = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if correct_bias else lr
        p = p - size * m / (v.sqrt() + eps)
        p = p - lr * wd * p
    return p


def _run(opt_cls, p0, grads, **kw):
    p = torch.nn.Parameter(p0.clone())
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


# Tiny gradients (as a zero-initialised LoRA B sees early on) make eps matter: where it is added decides.
G = torch.Generator().manual_seed(0)
P0 = torch.randn(64, generator=G)
GRADS = [torch.randn(64, generator=G) * 1e-6 for _ in range(4)]
HP = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}


@pytest.mark.parametrize("correct_bias", [True, False])
def test_lora_adamw_is_loras_rule(correct_bias):
    ours = _run(LoRAAdamW, P0, GRADS, correct_bias=correct_bias, **HP)
    ref = _rule_float64(P0, GRADS, HP["lr"], *HP["betas"], HP["eps"], HP["weight_decay"], correct_bias)
    assert torch.allclose(ours.double(), ref, rtol=0, atol=1e-6)
    assert float((ours.double() - P0.double()).abs().max()) > 1e-3  # it moved, so the check means something


def test_lora_adamw_differs_from_torch_adamw_by_eps_placement():
    ours = _run(LoRAAdamW, P0, GRADS, **HP)
    torch_rule = _run(torch.optim.AdamW, P0, GRADS, **HP)
    motion = float((ours - P0).abs().max())
    # On torch's scale LoRA's eps acts as eps/sqrt(1-b2^t) (31.6 eps at step 1): smaller steps on tiny gradients.
    assert float((ours - torch_rule).abs().max()) > 0.1 * motion
    assert motion < float((torch_rule - P0).abs().max())
    no_bias = _run(LoRAAdamW, P0, GRADS, correct_bias=False, **HP)
    assert not torch.equal(no_bias, ours)


def test_state_dict_round_trip_continues_bit_for_bit():
    p = torch.nn.Parameter(P0.clone())
    opt = LoRAAdamW([p], **HP)
    for g in GRADS[:2]:
        p.grad = g.clone()
        opt.step()
    q = torch.nn.Parameter(p.detach().clone())
    again = LoRAAdamW([q], **HP)
    buffer = io.BytesIO()  # through bytes, as the trainer's optimizer.pt (in memory the moments would be shared)
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    for g in GRADS[2:]:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        again.step()
    assert torch.equal(p, q) and again.state[q]["step"] == 4


def _cfg(**over):
    cfg = defaults_of("trainer")
    cfg.update(over)
    return cfg


def test_build_optimizer_picks_the_named_rule():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert type(build_optimizer(params, _cfg(optimizer="lora_adamw"))) is FusedLoRAAdamW
    assert type(build_optimizer(params, _cfg(optimizer="lora_adamw_loop"))) is LoRAAdamW
    assert type(build_optimizer(params, _cfg(optimizer="adamw"))) is torch.optim.AdamW
    assert build_optimizer(params, _cfg(optimizer="lora_adamw", correct_bias=False)).defaults["correct_bias"] is False


def test_unknown_optimizer_names_key_value_and_choices():
    with pytest.raises(ConfigError) as err:
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], _cfg(optimizer="adam"))
    msg = str(err.value)
    assert "trainer.optimizer='adam'" in msg and all(name in msg for name in OPTIMIZERS)


def test_adamw_without_bias_correction_is_refused_with_the_fix():
    with pytest.raises(ConfigError) as err:
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], _cfg(optimizer="adamw", correct_bias=False))
    msg = str(err.value)
    assert "trainer.correct_bias=false" in msg and "trainer.optimizer=lora_adamw" in msg


# ------------------------------------------------------------------ trainer: resume bit-for-bit
def _trainer(run_dir, optimizer, crash_at_call=None, **over):
    """A real Trainer (tiny GPT-2 + LoRA, 16 random sequences, checkpoint every step)."""
    cfg = _cfg(optimizer=optimizer, epochs=2, batch_size=4, warmup_steps=2, lr=1e-2, progress=False,
               eval_dev_loss=False, checkpoint_every=1, keep_epoch_checkpoints=False, **over)
    return lora_trainer(run_dir, cfg, crash_at_call)


def _final(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, optimizer):
    whole = _trainer(tmp_path / "whole", optimizer)
    whole.train()
    with pytest.raises(InjectedCrash):  # dies during optimizer step 6 (8 steps in all), after step 5's checkpoint
        _trainer(tmp_path / "split", optimizer, crash_at_call=6).train()
    resumed = _trainer(tmp_path / "split", optimizer)
    assert resumed.try_resume() and resumed.state.global_step == 5
    resumed.train()
    assert resumed.state.global_step == whole.state.global_step == 8
    a, b = _final(whole), _final(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    moments = lambda t: [s["exp_avg_sq"] for s in t.optimizer.state.values()]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(moments(whole), moments(resumed)))
    saved = load_file(str(next((tmp_path / "whole" / "checkpoints").glob("step-*")) / "trainable.safetensors"))
    assert saved and all(torch.equal(saved[k], a[k]) for k in saved)


def test_resume_with_another_optimizer_is_refused(tmp_path):
    with pytest.raises(InjectedCrash):
        _trainer(tmp_path, "lora_adamw", crash_at_call=3).train()
    with pytest.raises(CheckpointError) as err:
        _trainer(tmp_path, "adamw").train()
    msg = str(err.value)
    assert "trainer.optimizer=lora_adamw" in msg and "trainer.optimizer=adamw" in msg


# ------------------------------------------------------------------------- overlays compose
def _compose(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("experiment,expected", [
    ("e2e_loda", "lora_adamw"), ("e2e_lora", "lora_adamw"), ("dart_loda", "lora_adamw"),
    ("glue_lora_roberta_base_rte", "lora_adamw"), ("glue_condlora_rte", "adamw")])
def test_overlays_choose_their_sources_optimizer(experiment, expected):
    assert _compose([f"experiment={experiment}"]).trainer.optimizer == expected


def test_e2e_loda_composes_with_lora_adamw_and_builds_it():
    cfg = _compose(["experiment=e2e_loda", "trainer.optimizer=lora_adamw"])
    assert cfg.method.name == "loda" and cfg.trainer.optimizer == "lora_adamw"
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.trainer)
    assert isinstance(opt, LoRAAdamW)
    assert opt.defaults == {"lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "correct_bias": True}


def test_cli_refuses_an_unknown_optimizer_before_training(tmp_path):
    from runs_helpers import TINY_E2E, run_cli_here

    proc = run_cli_here([*TINY_E2E, "trainer.optimizer=adam"], tmp_path, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "trainer.optimizer='adam' is not one of lora_adamw, lora_adamw_loop, adamw" in proc.stderr
    assert not list(tmp_path.rglob("checkpoints"))
