"""Training losses, normalised the way the papers' code did.

Causal LM (E2E/DART): microsoft/LoRA ``examples/NLG/src/model.py`` (GPT2LMModel.forward) computes a
per-token loss — with label smoothing ``(1-ε)·NLL + ε·mean_v(−log p_v)`` — multiplies it by the
target mask and divides the sum over the whole batch by ``mask.sum() + 1e-4``: a token-level mean
over the batch (not a mean of per-sequence means). Position t predicts token t+1, and only the
target tokens (reference + EOS) carry loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor,
            label_smoothing: float = 0.0) -> torch.Tensor:
    """Token-level mean loss over the target positions of a batch, as LoRA's GPT2LMModel."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    mask = loss_mask[:, 1:].to(logits.dtype)
    logprobs = F.log_softmax(logits, dim=-1)
    nll = -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if label_smoothing > 1e-4:  # LoRA's threshold for "label smoothing on"
        loss = (1.0 - label_smoothing) * nll + label_smoothing * (-logprobs.mean(dim=-1))
    else:
        loss = nll
    return (loss * mask).sum() / (mask.sum() + 1e-4)


def lm_loss_sums(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[float, float]:
    """(sum of target-token NLL, number of target tokens): for an exact dev loss over many batches."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    mask = loss_mask[:, 1:].to(logits.dtype)
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    return float((nll.view_as(mask) * mask).sum()), float(mask.sum())


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, is_regression: bool) -> torch.Tensor:
    """Cross-entropy for classification, MSE for regression (STS-B), as RoBERTa's GLUE heads."""
    if is_regression:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels.long())
