"""trainer.optimizer=lora_adamw (FusedLoRAAdamW, flat per-group buffers) against lora_adamw_loop (LoRAAdamW,
today's per-tensor code): bit-identical updates, states that load either way, the per-tensor fallback,
and a tiny training run."""

from __future__ import annotations

import io

import pytest
import torch

from lodabench.config.schema import defaults_of
from lodabench.train.optim import FusedLoRAAdamW, LoRAAdamW
from methods_tiny import lora_trainer

torch.set_num_threads(1)

# Odd sizes (not multiples of any vector width) and a 2-D shape: element-wise ops must not care.
SHAPES = [(4, 33), (17,), (1000,), (3, 5, 7), (1,)]
HP = {"lr": 3e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]


def _grads(n_steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g) * 10.0 ** -(i % 4 + 2) for s in SHAPES] for i in range(n_steps)]


def _steps(opt, params, grads, skip=None):
    """One optimizer step per gradient list; ``skip``: (step, index) of a parameter given no gradient."""
    for t, gs in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad = None if skip == (t, i) else g.clone()
        opt.step()


def _same(a, b):
    return all(torch.equal(x.detach(), y.detach()) for x, y in zip(a, b))


@pytest.mark.parametrize("correct_bias", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_equals_loop_bit_for_bit(correct_bias, weight_decay):
    hp = {**HP, "weight_decay": weight_decay, "correct_bias": correct_bias}
    loop, fused = _params(), _params()
    _steps(LoRAAdamW(loop, **hp), loop, _grads(6))
    opt = FusedLoRAAdamW(fused, **hp)
    _steps(opt, fused, _grads(6))
    assert _same(loop, fused)
    assert not _same(loop, _params())  # they moved: the equality means something
    assert opt._flat, "the fused path was taken"


def test_a_parameter_without_gradient_takes_the_loop_path_with_the_loops_result():
    loop, fused = _params(), _params()
    _steps(LoRAAdamW(loop, **HP), loop, _grads(5), skip=(2, 1))
    opt = FusedLoRAAdamW(fused, **HP)
    _steps(opt, fused, _grads(5), skip=(2, 1))
    assert _same(loop, fused)
    assert opt.state[fused[1]]["step"] == 4 and opt.state[fused[0]]["step"] == 5  # unequal steps: loop path


def _through_bytes(state):
    buffer = io.BytesIO()  # as the trainer's optimizer.pt
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("writer,reader", [(LoRAAdamW, FusedLoRAAdamW), (FusedLoRAAdamW, LoRAAdamW),
                                           (FusedLoRAAdamW, FusedLoRAAdamW)])
def test_a_saved_state_loads_and_continues_identically(writer, reader):
    grads = _grads(6)
    whole = _params()
    _steps(LoRAAdamW(whole, **HP), whole, grads)
    first = _params()
    opt = writer(first, **HP)
    _steps(opt, first, grads[:3])
    second = [torch.nn.Parameter(p.detach().clone()) for p in first]
    again = reader(second, **HP)
    again.load_state_dict(_through_bytes(opt.state_dict()))
    _steps(again, second, grads[3:])
    assert _same(whole, second) and again.state[second[0]]["step"] == 6


def test_state_dict_layout_is_the_loops():
    loop, fused = _params(), _params()
    a, b = LoRAAdamW(loop, **HP), FusedLoRAAdamW(fused, **HP)
    _steps(a, loop, _grads(2))
    _steps(b, fused, _grads(2))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"] and sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        assert sa["state"][k]["step"] == sb["state"][k]["step"] == 2
        assert all(torch.equal(sa["state"][k][m], sb["state"][k][m]) for m in ("exp_avg", "exp_avg_sq"))


def test_a_replaced_parameter_storage_is_noticed_and_rebuilt():
    loop, fused = _params(), _params()
    grads = _grads(4)
    _steps(LoRAAdamW(loop, **HP), loop, grads)
    opt = FusedLoRAAdamW(fused, **HP)
    _steps(opt, fused, grads[:2])
    fused[0].data = fused[0].data.clone()  # as model.to(...) would: the view is gone
    _steps(opt, fused, grads[2:])
    assert _same(loop, fused)


def test_tiny_training_run_is_bit_identical_to_the_loop(tmp_path):
    def final(optimizer):
        cfg = defaults_of("trainer")
        cfg.update(optimizer=optimizer, epochs=2, batch_size=4, warmup_steps=2, lr=1e-2, progress=False,
                   eval_dev_loss=False, checkpoint_every=3, keep_epoch_checkpoints=False)
        trainer = lora_trainer(tmp_path / optimizer, cfg)
        trainer.train()
        return trainer, {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}

    fused_trainer, fused = final("lora_adamw")
    _, loop = final("lora_adamw_loop")
    assert type(fused_trainer.optimizer) is FusedLoRAAdamW and fused_trainer.state.global_step == 8
    assert fused.keys() == loop.keys() and all(torch.equal(fused[k], loop[k]) for k in fused)


def test_a_checkpoint_of_the_loop_resumes_under_the_fused_optimizer(tmp_path):
    from methods_tiny import InjectedCrash

    def trainer(run_dir, optimizer, crash=None):
        cfg = defaults_of("trainer")
        cfg.update(optimizer=optimizer, epochs=2, batch_size=4, warmup_steps=2, lr=1e-2, progress=False,
                   eval_dev_loss=False, checkpoint_every=1, keep_epoch_checkpoints=False)
        return lora_trainer(run_dir, cfg, crash)

    whole = trainer(tmp_path / "whole", "lora_adamw_loop")
    whole.train()
    with pytest.raises(InjectedCrash):  # dies in step 6, after step 5's checkpoint (written by the loop)
        trainer(tmp_path / "split", "lora_adamw_loop", crash=6).train()
    resumed = trainer(tmp_path / "split", "lora_adamw")
    resumed.train()
    assert resumed.state.global_step == 8
    a, b = whole.model.named_parameters(), resumed.model.named_parameters()
    assert all(torch.equal(x.detach(), y.detach()) for (_, x), (_, y) in zip(a, b))
