"""Classification/regression tasks (GLUE): cross-entropy or MSE on the head, metrics on dev.

Which rows are fitted, which select the checkpoint (dev loss per epoch) and which are reported is
the task's ``protocol_splits``: ``data.protocol=official`` (LoRA: fit train, report dev) or
``holdout`` (CondLoRA: fit 90% of train, select on the other 10%, report the official dev set).
Predictions on each reported split are written to ``predictions[_<split>].jsonl`` beside the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lodabench.tasks import collate as C
from lodabench.errors import ConfigError
from lodabench.io import atomic_write_text, finite_json
from lodabench.tasks.losses import classification_loss


class ClassificationPipeline:
    model_kind = "sequence_classification"

    def __init__(self, cfg: DictConfig, task, tokenizer, device: torch.device):
        self.cfg, self.task, self.tok, self.device = cfg, task, tokenizer, device
        self.collator = C.ClassificationCollator(tokenizer, int(cfg.trainer.max_length), task.is_regression)
        self.splits = task.protocol_splits(int(cfg.seed))
        self.eval_bs = int(cfg.trainer.eval_batch_size)

    @classmethod
    def preflight(cls, cfg: DictConfig, task) -> None:
        """The rows to fit, select on and report exist (read now), and selection.metric is one of the task's."""
        from lodabench.tasks.pipelines import require_rows

        splits = task.protocol_splits(int(cfg.seed))
        fix = f"check the GLUE files of {task.name} under the data root (paths.data_root) and data.max_* slicing"
        require_rows(splits["fit"], f"the training rows of {task.name} (data.protocol={task.protocol})", fix)
        require_rows(splits["select"], f"the selection rows of {task.name}", fix)
        for split, rows in splits["test"].items():
            require_rows(rows, f"the {split} rows of {task.name}", fix)
        metric = cfg.selection.metric
        if metric is not None and metric not in task.metric_names:
            raise ConfigError(f"selection.metric={metric!r} is not a metric of {task.name}; "
                              f"choose one of {', '.join(task.metric_names)} (or null: {task.primary_metric})")

    def objective(self, model, reported: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """GLUE: the protocol's selection split (CondLoRA: the held-out 10% of train; official: dev)."""
        return self.selection_metrics(model, reported), "selection"

    def train_examples(self):
        return self.splits["fit"]

    def example_lengths(self, rows) -> list[int]:
        """Token count of each training row as the collator encodes it (trainer.group_by_length)."""
        return self.collator.lengths(rows)

    def collate(self, rows):
        return self.collator(rows)

    def loss(self, model, batch) -> torch.Tensor:
        if getattr(model, "num_prompts", 1) > 1:  # prompt ensemble: mean of the per-prompt losses
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return classification_loss(out.logits, batch["labels"], self.task.is_regression)

    @torch.no_grad()
    def _forward_all(self, model, rows):
        model.eval()
        for start in range(0, len(rows), self.eval_bs):
            batch = {k: v.to(self.device) for k, v in self.collate(rows[start:start + self.eval_bs]).items()}
            yield batch, model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def dev_loss(self, model) -> float:
        total, n = 0.0, 0
        for batch, logits in self._forward_all(model, self.splits["select"]):
            total += float(classification_loss(logits, batch["labels"], self.task.is_regression)) * len(batch["labels"])
            n += len(batch["labels"])
        return total / max(n, 1)

    def predict(self, model, rows) -> list[float | int]:
        preds: list[float | int] = []
        for _, logits in self._forward_all(model, rows):
            preds.extend(logits.squeeze(-1).float().tolist() if self.task.is_regression else logits.argmax(-1).tolist())
        return preds

    @property
    def primary_metric(self) -> str:
        return self.task.primary_metric

    def evaluate_selection_split(self, model, out_dir: Path) -> dict[str, Any]:
        """Metrics on the split the protocol selects on (``select``: dev, or the held-out 10% of train)."""
        from lodabench.scoring.glue import glue_metrics

        rows = self.splits["select"]
        return dict(glue_metrics(self.task.name, self.predict(model, rows), [r[2] for r in rows]))

    def selection_metrics(self, model, reported: dict[str, Any]) -> dict[str, Any]:
        """Metrics on the selection split; the reported ones when it is the one reported split
        (official protocol: dev), so the same rows are not predicted twice."""
        if len(self.splits["test"]) == 1 and self.selection_split_is_reported():
            return reported
        return self.evaluate_selection_split(model, Path())

    def selection_split_is_reported(self) -> bool:
        return any(rows == self.splits["select"] for rows in self.splits["test"].values())

    def evaluate(self, model, run_dir: Path) -> dict[str, Any]:
        from lodabench.scoring.glue import glue_metrics

        metrics: dict[str, Any] = {}
        run_dir.mkdir(parents=True, exist_ok=True)
        tests = self.splits["test"]
        for split, rows in tests.items():
            preds = self.predict(model, rows)
            labels = [r[2] for r in rows]
            name = "predictions.jsonl" if len(tests) == 1 else f"predictions_{split}.jsonl"
            atomic_write_text(run_dir / name, "".join(  # strict JSON: a NaN prediction is written as null
                json.dumps(finite_json({"i": i, "prediction": p, "label": y}), allow_nan=False) + "\n"
                for i, (p, y) in enumerate(zip(preds, labels))))
            scores = dict(glue_metrics(self.task.name, preds, labels))
            if len(tests) == 1:
                metrics.update(scores)
            else:  # MNLI: matched and mismatched reported side by side
                metrics.update({f"{split}/{k}": v for k, v in scores.items()})
            metrics[f"n_{split}"] = len(rows)
        metrics["protocol"] = self.task.protocol
        return metrics
