"""Execution paths chosen for cost, proved equal to the reference path (issue #19):

* S-LoDA ``method.storage``: ``sparse_csr`` computes what ``dense`` computes (forward, the input's
  gradient and the adapter's gradients, every family); ``semi24`` (2:4 mask, CUDA semi-structured
  kernel) is validated before training, its mask is 2:4, and on a capable GPU it equals the dense
  path with the same mask.
* CondLoRA's fused rebuild (one matmul for A and B) gives the outputs and gradients of the
  two-matmul reference ``low_rank_pair``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from lodabench.errors import ConfigError
from lodabench.methods import apply_method, load_trainable_state_dict, method_config, targets, trainable_state_dict
from lodabench.methods import approx, condlora
from lodabench.methods.condlora import CondLoRAAdapter

from methods_tiny import batch, randomize_adapters, tiny

torch.set_num_threads(1)
SEMI24_WHY = approx.semi24_unsupported_reason()


def _loss_and_grads(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Logits, gradients of the trainable tensors, and the gradient reaching the embeddings
    (it flows back through every frozen projection, so it checks the input gradient too)."""
    model.zero_grad(set_to_none=True)
    emb = model.get_input_embeddings()
    emb.weight.requires_grad_(True)
    out = model(**b).logits
    (out.float() ** 2).mean().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    emb.weight.requires_grad_(False)
    return out.detach(), grads, grads.pop(next(n for n, p in model.named_parameters() if p is emb.weight))


def _pair(base: torch.nn.Module, cfg_a: dict, cfg_b: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    a = apply_method(copy.deepcopy(base), cfg_a)
    randomize_adapters(a)
    b = apply_method(copy.deepcopy(base), cfg_b)
    load_trainable_state_dict(b, trainable_state_dict(a))
    return a.train(), b.train()


def _assert_same(a: torch.nn.Module, b: torch.nn.Module, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    x = batch(bsz=3, seq=10)
    torch.manual_seed(0)  # dropout draws the same masks in both
    out_a, grads_a, emb_a = _loss_and_grads(a, x)
    torch.manual_seed(0)
    out_b, grads_b, emb_b = _loss_and_grads(b, x)
    torch.testing.assert_close(out_b, out_a, rtol=rtol, atol=atol)
    torch.testing.assert_close(emb_b, emb_a, rtol=rtol, atol=atol)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for n in grads_a:
        torch.testing.assert_close(grads_b[n], grads_a[n], rtol=rtol, atol=atol, msg=lambda m, n=n: f"{n}: {m}")


# ----------------------------------------------------------------------------- S-LoDA storage


@pytest.mark.parametrize("family", ["gpt2", "roberta", "llama"])
@pytest.mark.parametrize("keep", [0.4, 0.6])
def test_s_loda_csr_equals_dense_forward_and_gradients(family, keep):
    base = tiny(family)
    cfg = {"name": "s_loda", "r": 4, "keep": keep, "dropout": 0.1}
    dense, csr = _pair(base, cfg, {**cfg, "storage": "sparse_csr"})
    per_layer = 1 if family == "gpt2" else 3  # one fused c_attn, or q, k, v Linears
    assert sum(isinstance(m, approx.FrozenSparse) for m in csr.modules()) == 2 * per_layer  # the CSR kernel runs
    assert not any(isinstance(m, approx.FrozenSparse) for m in dense.modules())
    assert torch.equal(targets.fused_projection(csr, 0).weight(), targets.fused_projection(dense, 0).weight())
    _assert_same(dense, csr)


def test_two_four_mask_keeps_the_two_largest_of_every_four():
    w = torch.tensor([[0.1, -0.9, 0.5, 0.2, 3.0, 2.0, -1.0, 0.0]])
    assert approx.two_four_mask(w).tolist() == [[False, True, True, False, True, True, False, False]]
    w = torch.randn(48, 64)
    m = approx.two_four_mask(w)
    assert (m.reshape(48, 16, 4).sum(-1) == 2).all()
    g = w.abs().reshape(48, 16, 4)
    mm = m.reshape(48, 16, 4)
    kept_min = torch.where(mm, g, torch.inf).amin(-1)
    dropped_max = torch.where(mm, -torch.inf, g).amax(-1)
    assert (kept_min >= dropped_max).all()
    with pytest.raises(ConfigError, match="multiple of 4"):
        approx.two_four_mask(torch.randn(4, 6))


def test_semi24_mask_on_the_fused_projection_is_2_4_per_output_row():
    w_in_out = torch.randn(64, 192)  # RoBERTa-like fused (in, q|k|v)
    m = approx.pruning_mask(w_in_out, 0.5, "semi24")
    assert (m.t().reshape(192, 16, 4).sum(-1) == 2).all()
    assert torch.equal(approx.pruning_mask(w_in_out, 0.5, "dense"), approx.magnitude_mask(w_in_out, 0.5))


def test_semi24_is_validated_before_training():
    gpt2 = tiny("gpt2")
    with pytest.raises(ConfigError, match=r"method\.keep=0\.4: method\.storage=semi24 keeps exactly 2 of every 4"):
        method_config({"name": "s_loda", "keep": 0.4, "storage": "semi24"})
    with pytest.raises(ConfigError, match=r"method\.storage='sparse'.*Fix: set method\.storage to one of"):
        method_config({"name": "s_loda", "storage": "sparse"})
    if SEMI24_WHY is None:
        assert method_config({"name": "s_loda", "keep": 0.5, "storage": "semi24"}, gpt2).storage == "semi24"
        return
    for model in (None, gpt2):  # without and with the model: the hardware is known either way
        with pytest.raises(ConfigError, match=r"method\.storage='semi24': .*Fix: use method\.storage=dense"):
            method_config({"name": "s_loda", "keep": 0.5, "storage": "semi24"}, model)
    with pytest.raises(ConfigError, match=r"method\.storage='semi24'"):
        apply_method(copy.deepcopy(gpt2), {"name": "s_loda", "keep": 0.5, "storage": "semi24"})


def test_semi24_module_refuses_the_cpu_clearly():
    w = torch.randn(8, 16) * approx.two_four_mask(torch.randn(8, 16))
    mod = approx.FrozenSemi24(w, torch.zeros(8), stores_in_out=False)
    assert torch.equal(mod.dense_weight(), w)
    with pytest.raises(ConfigError, match=r"method\.storage='semi24': .*(CPU|CUDA|capability|torch)"):
        mod(torch.randn(2, 16))


@pytest.mark.skipif(SEMI24_WHY is not None, reason=f"semi24 kernels unavailable: {SEMI24_WHY}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_semi24_equals_dense_with_the_same_mask_on_gpu(dtype):
    torch.manual_seed(0)
    w = torch.randn(256, 128, device="cuda", dtype=dtype)
    w = w * approx.two_four_mask(w)
    mod = approx.FrozenSemi24(w, torch.randn(256, device="cuda", dtype=dtype), stores_in_out=False)
    x = torch.randn(4, 32, 128, device="cuda", dtype=dtype, requires_grad=True)
    y = mod(x)
    ref_x = x.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.linear(ref_x, w, mod.bias)
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.float16 else {"rtol": 1e-3, "atol": 1e-3}
    torch.testing.assert_close(y, ref, **tol)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad, **tol)


# ----------------------------------------------------------------------------- CondLoRA rebuild


def test_condlora_fused_rebuild_equals_the_reference_pair():
    torch.manual_seed(0)
    w = torch.randn(48, 48, dtype=torch.float64)
    ta = torch.randn(48, 4, dtype=torch.float64)
    tb = torch.randn(48, 4, dtype=torch.float64)
    for w0 in condlora.W0_ORIENTATIONS:
        a_ref, b_ref = condlora.low_rank_pair(w, ta, tb, w0)
        a, b = condlora.rebuild_pair(w, ta, tb, w0)
        assert a.shape == a_ref.shape and b.shape == b_ref.shape
        torch.testing.assert_close(a, a_ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, b_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family,w0", [("gpt2", "linear"), ("roberta", "linear"), ("llama", "input_major")])
def test_condlora_fused_rebuild_same_outputs_and_gradients(family, w0):
    base = tiny(family)
    cfg = {"name": "condlora", "r": 4, "alpha": 8, "dropout": 0.1, "w0": w0}
    ref, fused = _pair(base, cfg, cfg)
    adapters = [m for m in ref.modules() if isinstance(m, CondLoRAAdapter)]
    assert adapters
    for m in adapters:
        m.fused_rebuild = False  # the two-matmul reference
    assert all(m.fused_rebuild for m in fused.modules() if isinstance(m, CondLoRAAdapter))
    _assert_same(ref, fused)
