"""Fine-tune a Hugging Face model with LoDA under the Hugging Face ``Trainer``, then save and reload it.

    python examples/hf_trainer_loda.py                       # tiny random GPT-2, synthetic data, < 1 min on CPU
    python examples/hf_trainer_loda.py --model path/to/gpt2  # a local checkpoint (AutoModelForCausalLM)

lodabench's methods are plain ``nn.Module`` surgery, so anything that trains a torch model trains
them: ``lodabench.apply_method`` freezes the base and injects LoDA (Liu et al.) on W_q and W_v;
``Trainer`` sees only the trainable tensors (LoDA's A, B and two r x r maps per projection);
``lodabench.save_adapter`` writes those tensors plus the method config, and
``lodabench.load_adapter`` rebuilds the method on a fresh base and loads them. Runs offline: the
default model is built from a config (random weights) and the data are synthetic sequences.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import lodabench

VOCAB, SEQ_LEN = 64, 16


def base_model(location: str | None, seed: int) -> torch.nn.Module:
    """A local checkpoint, or a tiny random GPT-2 (the same seed gives the same weights)."""
    torch.manual_seed(seed)
    if location:
        return AutoModelForCausalLM.from_pretrained(location)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=SEQ_LEN, n_embd=64, n_layer=2, n_head=4,
                                      bos_token_id=0, eos_token_id=0))


def synthetic_examples(n: int, vocab: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Counting sequences (start, start+1, ...) mod vocab: learnable from the first token on."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, vocab, (n,), generator=g)
    rows = [(torch.arange(SEQ_LEN) + s) % vocab for s in starts]
    return [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r.clone()} for r in rows]


@torch.no_grad()
def mean_loss(model: torch.nn.Module, examples: list[dict[str, torch.Tensor]]) -> float:
    model.eval()
    batch = {k: torch.stack([e[k] for e in examples]) for k in examples[0]}
    return float(model(**batch).loss)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="local model directory (default: tiny random GPT-2)")
    ap.add_argument("--output-dir", default=None, help="where the adapter goes (default: a temporary dir)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="lodabench-hf-trainer-"))

    model = base_model(args.model, args.seed)
    vocab = model.config.vocab_size
    train, held_out = synthetic_examples(64, vocab, seed=1), synthetic_examples(8, vocab, seed=2)
    # r=4, alpha=32, W_q and W_v: the LoDA paper trains with LoRA's GPT-2 E2E settings (method=loda's defaults, methods/loda.py).
    model = lodabench.apply_method(model, "loda", r=4, alpha=32.0, targets=["q", "v"])
    before = mean_loss(model, held_out)

    training_args = TrainingArguments(
        output_dir=str(out / "trainer"), max_steps=args.steps, per_device_train_batch_size=8,
        learning_rate=1e-2, warmup_steps=0, logging_steps=10, save_strategy="no", report_to=[],
        use_cpu=True, seed=args.seed, dataloader_num_workers=0, disable_tqdm=True,
    )
    Trainer(model=model, args=training_args, train_dataset=train).train()
    after = mean_loss(model, held_out)

    lodabench.save_adapter(model, out / "adapter")
    reloaded = lodabench.load_adapter(base_model(args.model, args.seed).eval(), out / "adapter")
    batch = {k: torch.stack([e[k] for e in held_out]) for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        identical = torch.equal(model(**batch).logits, reloaded(**batch).logits)
    report = {"loss_before": before, "loss_after": after, "loss_reloaded": mean_loss(reloaded, held_out),
              "reloaded_logits_identical": identical,
              "trainable": lodabench_trainable(model), "adapter_dir": str(out / "adapter")}
    print(json.dumps(report, indent=2))
    return report


def lodabench_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    main()
