"""Train a tiny LoRA GPT-2 with lodabench.train.trainer.Trainer, alone or as one rank under torchrun.

Used by tests/test_ddp.py: ``python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py
OUT --batch-size 8`` and the same in one process (``train(...)`` called in-process) must end with the
same trainable weights. Examples have very different numbers of target tokens, so the two ranks'
shares of a global batch carry different token counts (the case where a per-rank mean is wrong).
Rank 0 writes ``OUT/weights.safetensors`` and ``OUT/state.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import weakref
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from lodabench.train import distributed as D
from lodabench import methods
from lodabench.tasks.collate import CausalLMCollator
from lodabench.tasks.losses import lm_loss, lm_loss_sums
from lodabench.train.trainer import Trainer


def examples(n: int = 26, seed: int = 5) -> list[dict[str, list[int]]]:
    """Source of 3-10 tokens, target of 1-30 tokens: token counts per example vary ~30x."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = int(torch.randint(3, 11, (1,), generator=g))
        tgt = int(torch.randint(1, 31, (1,), generator=g))
        ids = torch.randint(3, 250, (src + tgt,), generator=g).tolist()
        out.append({"input_ids": ids, "loss_mask": [0] * src + [1] * tgt})
    return out


def build_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64,
                                       attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0,
                                       bos_token_id=0, eos_token_id=0))
    torch.manual_seed(seed + 1)
    return methods.apply_method(model, {"name": "lora", "r": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["q", "v"]})


def train(out: Path, *, batch_size: int, grad_accum: int = 1, max_steps: int = 4, epochs: int = 2,
          naive_weights: bool = False, precision: str = "fp32") -> dict:
    torch.set_num_threads(1)
    ctx, device = D.init_from_env("cpu")
    data = examples()
    collator = CausalLMCollator(pad_token_id=0)
    model = build_model()

    def loss_fn(m, batch):
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return lm_loss(logits, batch["input_ids"], batch["loss_mask"], label_smoothing=0.1)

    def dev_loss(m):
        batch = collator(data[:4])
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        s, n = lm_loss_sums(logits, batch["input_ids"], batch["loss_mask"])
        return s / n

    cfg = {"lr": 2e-2, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-6, "weight_decay": 0.01,
           "warmup_steps": 1, "epochs": epochs, "batch_size": batch_size, "grad_accum": grad_accum,
           "max_steps": max_steps, "checkpoint_every": 2, "grad_clip": 1.0, "progress": False,
           "precision": precision}
    trainer = Trainer(model, cfg, seed=110, run_dir=out / "run", train_examples=data, collate=collator,
                      loss_fn=loss_fn, dev_loss_fn=dev_loss, device=device or torch.device("cpu"),
                      rank=ctx.rank, world_size=ctx.world_size,
                      loss_weight_fn=(lambda batch: 1.0) if naive_weights else None)
    ddp_ref = weakref.ref(trainer.train_model)
    state = trainer.train()
    gc.collect()
    # The DDP wrapper must be gone before the group is destroyed (else: GIL deadlock at exit, see
    # Trainer.train); under one process train_model is the model itself, still alive.
    assert (ddp_ref() is None) == (ctx.world_size > 1), "DDP wrapper outlived training"
    D.finish()
    summary = {"global_step": state.global_step, "dev_loss": state.dev_loss, "train_loss": state.train_loss,
               "world_size": ctx.world_size, "micro_steps": trainer.micro_steps}
    if ctx.is_main:
        weights = {k: v.detach().cpu().contiguous() for k, v in methods.trainable_state_dict(model).items()}
        save_file(weights, str(out / "weights.safetensors"))
        (out / "state.json").write_text(json.dumps(summary))
    return summary


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=4)
    p.add_argument("--naive-weights", action="store_true")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train(args.out, batch_size=args.batch_size, grad_accum=args.grad_accum, max_steps=args.max_steps,
          naive_weights=args.naive_weights)
    print(f"rank {os.environ.get('RANK', '0')} done")


if __name__ == "__main__":
    main(sys.argv[1:])
