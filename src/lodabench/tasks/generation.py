"""Generation tasks (E2E, DART): LM loss on target tokens, beam-search decoding, official scoring.

Evaluation decodes each unique source once (E2E test: 630 MRs, not 4,693 pairs), writes
``hyp.txt`` and ``refs.txt`` in the official scorers' formats beside the run, then scores them.
Decoded hypotheses are appended to ``hyp.partial.jsonl`` chunk by chunk (flushed and fsynced), so
a crash during decoding loses at most one chunk (= one decoding batch) and a re-run decodes only
what is missing. Test hook: ``LODABENCH_FAULT_AFTER_DECODE_CHUNK=N`` makes the process exit abruptly
right after the N-th chunk of this attempt is on disk (like the trainer's LODABENCH_FAULT_AFTER_STEP).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from omegaconf import DictConfig

from lodabench.tasks import collate as C
from lodabench.tasks.registry import data_scorer
from lodabench.tasks.losses import lm_loss, lm_loss_sums
from lodabench.scoring.textio import write_hypotheses, write_reference_groups

log = logging.getLogger(__name__)

FAULT_ENV = "LODABENCH_FAULT_AFTER_DECODE_CHUNK"


def _maybe_inject_fault(chunks_done: int) -> None:
    """Test hook: die abruptly (like kill -9) once N decode chunks are on disk (env value N)."""
    at = os.environ.get(FAULT_ENV)
    if at and int(at) == chunks_done:
        os._exit(76)


def _data_and_scorer(cfg: Any) -> tuple[Any, Any]:
    """The typed data config and its scorer: the run's Plan has them (typed once in preflight); a
    composed config (tests, reference tools) is typed here."""
    if getattr(cfg, "scorer", None) is not None:
        return cfg.data, cfg.scorer
    return data_scorer(cfg.data)


class GenerationPipeline:
    model_kind = "causal_lm"

    def __init__(self, cfg: DictConfig, task, tokenizer, device: torch.device):
        self.cfg, self.task, self.tok, self.device = cfg, task, tokenizer, device
        self.max_length = int(cfg.trainer.max_length)
        self.label_smoothing = float(cfg.trainer.label_smoothing)
        self.collator = C.CausalLMCollator(pad_token_id=tokenizer.pad_token_id)
        self.data_config, self.scorer = _data_and_scorer(cfg)

    @classmethod
    def preflight(cls, cfg: DictConfig, task) -> None:
        """Decoding values, the scorer and its options, and every split the run reads, checked now:
        ``decoding.num_beams=0`` fails before training, not after it."""
        from lodabench.tasks.decoding import decoding_config
        from lodabench.tasks.pipelines import require_rows

        decoding_config(cfg.decoding)
        conf, scorer = _data_and_scorer(cfg)
        if scorer.ready is not None:
            scorer.ready(conf)
        fix = f"check the {task.name} files under the data root (paths.data_root) and data.max_* slicing"
        require_rows(task.train_pairs("train"), f"the training pairs of {task.name}", fix)
        split = cfg.data.eval_split
        items = task.eval_items(split)
        require_rows(items, f"the {split} items of {task.name} (data.eval_split={split})", fix)
        if cfg.trainer.eval_dev_loss and "dev" in task.splits:
            require_rows(task.train_pairs("dev"), f"the dev pairs of {task.name} (trainer.eval_dev_loss=true)", fix)

    def objective(self, model, reported: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Generation: the reported split's scores (decoding dev again would double the evaluation)."""
        return reported, "reported"

    # --------------------------------------------------------------------------- training
    def _encode(self, pairs) -> list[dict[str, list[int]]]:
        return [C.encode_pair(self.tok, src, tgt, self.max_length) for src, tgt in pairs]

    def train_examples(self) -> list[dict[str, list[int]]]:
        return self._encode(self.task.train_pairs("train"))

    def example_lengths(self, examples: list[dict[str, list[int]]]) -> list[int]:
        """Token count of each (already encoded) training example (trainer.group_by_length)."""
        return [len(ex["input_ids"]) for ex in examples]

    def collate(self, examples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        return self.collator(examples)

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if getattr(model, "num_prompts", 1) > 1:
            # A prompt ensemble's logits are the mixture; its loss is the mean per-prompt loss,
            # which the wrapper computes from the labels (no label smoothing).
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return lm_loss(out.logits, batch["input_ids"], batch["loss_mask"], self.label_smoothing)

    @torch.no_grad()
    def dev_loss(self, model) -> float:
        """Token-level mean NLL (no label smoothing) over the dev pairs."""
        if not hasattr(self, "_dev"):
            self._dev = self._encode(self.task.train_pairs("dev"))
        bs = int(self.cfg.trainer.batch_size)
        cap = self.cfg.trainer.max_dev_batches
        total, count = 0.0, 0.0
        for i, start in enumerate(range(0, len(self._dev), bs)):
            if cap is not None and i >= int(cap):
                break
            batch = {k: v.to(self.device) for k, v in self.collate(self._dev[start:start + bs]).items()}
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            s, n = lm_loss_sums(out.logits, batch["input_ids"], batch["loss_mask"])
            total, count = total + s, count + n
        return total / max(count, 1.0)

    # ------------------------------------------------------------------------- evaluation
    def evaluate(self, model, run_dir: Path, split: str | None = None) -> dict[str, Any]:
        from lodabench.tasks.decoding import decode

        split = split or self.cfg.data.eval_split
        run_dir.mkdir(parents=True, exist_ok=True)
        items = self.task.eval_items(split)
        refs = [list(r) for _, r in items]
        write_reference_groups(run_dir / "refs.txt", refs)
        hyp_path = run_dir / "hyp.txt"
        if not hyp_path.is_file():
            hyps = self._decode_resumable(model, [s for s, _ in items], run_dir, decode)
            write_hypotheses(hyp_path, hyps)
            (run_dir / "hyp.partial.jsonl").unlink(missing_ok=True)
        from lodabench.scoring.textio import read_hypotheses
        hyps = read_hypotheses(hyp_path)
        return self.score(hyps, refs)

    @property
    def primary_metric(self) -> str:
        """The scorer's main metric (LoDA/LoRA tables' first column); selection.rule=dev_metric selects on it."""
        return self.scorer.primary_metric

    def evaluate_selection_split(self, model, out_dir: Path) -> dict[str, Any]:
        """Decode and score the dev split (selection.rule=dev_metric)."""
        return self.evaluate(model, out_dir, split="dev")

    def selection_split_is_reported(self) -> bool:
        return self.cfg.data.eval_split == "dev"

    def _decode_resumable(self, model, sources: list[str], run_dir: Path, decode) -> list[str]:
        partial = run_dir / "hyp.partial.jsonl"
        from lodabench.state_files import read_partial_hypotheses
        # Every line checked (DataError naming the file and line); a torn last line is cut and decoded again.
        done = read_partial_hypotheses(partial, len(sources)) if partial.is_file() else {}
        todo = [i for i in range(len(sources)) if i not in done]
        if done:
            log.info("decoding: %d of %d already done, %d to go", len(done), len(sources), len(todo))
        from lodabench.tasks.decoding import decoding_config

        dcfg = decoding_config(self.cfg.decoding)
        model.eval()
        # One chunk = one decoding batch, so a resumed run decodes the same batches as an
        # uninterrupted one (same padding, same outputs).
        chunk = dcfg.batch_size
        # One bar over all items (the decoder's own per-batch bar is switched off).
        bar = tqdm(total=len(sources), initial=len(done), desc="decode", disable=not dcfg.progress,
                   dynamic_ncols=True)
        dcfg = dataclasses.replace(dcfg, progress=False)
        with open(partial, "a", encoding="utf-8") as fh, bar:
            for n_chunk, start in enumerate(range(0, len(todo), chunk), 1):
                idx = todo[start:start + chunk]
                # LoRA keeps the last seq_len - eval_len prompt tokens (gpt2_beam.py query cut).
                prompt_len = max(self.max_length - dcfg.max_new_tokens, 1)
                prompts = [C.encode_source(self.tok, sources[i], max_length=prompt_len) for i in idx]
                outs = decode(model, self.tok, prompts, dcfg)
                for i, text in zip(idx, outs):
                    done[i] = text
                    fh.write(json.dumps({"i": i, "hyp": text}, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                bar.update(len(idx))
                _maybe_inject_fault(n_chunk)
        return [done[i] for i in range(len(sources))]

    def score(self, hyps: list[str], refs: list[list[str]]) -> dict[str, Any]:
        """The metrics of ``data.scorer`` (default: the task's own scorer) on the decoded outputs."""
        return self.scorer.score(hyps, refs, self.data_config)
