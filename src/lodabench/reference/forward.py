"""Forward/optimizer cases: data encoding, logits, loss, LoRA gradients and optimizer steps.

Everything runs through lodabench's training path: ``collate.encode_pair`` (token ids and loss
positions), ``GenerationPipeline.collate`` / ``.loss`` (``losses.lm_loss`` with label smoothing),
and ``Trainer._step`` (loss weighting, backward, ``trainer.optimizer``, linear warm-up schedule)
with the trainer config ``trainer=default`` (schema.TrainerConfig) plus the case's recipe and
``trainer.optimizer=lora_adamw``. ``_step`` is driven directly with the case's batches because
the case fixes the batch order (no shuffling), which ``Trainer.train``'s seeded epoch order would
not reproduce; the step itself is the one ``train`` calls.

The texts of the optimizer rows beyond the 8 of ``batch.json`` are lines of LoRA's
``examples/NLG/data/e2e/valid.txt``: read from ``<data_root>/e2e_lora/valid.txt`` (byte-identical,
../shared/data/MANIFEST.md), checked against ``batch.json`` on the rows both hold.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from lodabench.tasks.collate import encode_pair
from lodabench.config.schema import defaults_of
from lodabench.reference import case as C
from lodabench.reference.model import build_case_model, lora_params
from lodabench.reference.report import TOL_GRADS, TOL_LOGITS, TOL_LOSS, TOL_PARAMS, CaseReport

SUMMARY_KEYS = ("lse", "max", "eos_50256", "vocab_0_255")
EOS_ID = 50256  # the "eos_50256" summary: GPT-2's <|endoftext|>


def check_forward(case_dir: Path, tok, data_root: Path | None) -> CaseReport:
    report = CaseReport(case_dir.name, "forward")
    batch_path = case_dir / "batch.json"
    batch = C.read_case_json(batch_path)
    examples = _encode_batch(report, batch, batch_path, tok)
    model = build_case_model(case_dir / "weights.safetensors")
    _check_logits(report, case_dir, model, examples, tok)
    _check_loss_and_grads(report, case_dir, model, examples, tok)
    if (case_dir / "optimizer_run.json").is_file():
        _check_steps(report, case_dir, tok, batch, data_root)
    return report


# ------------------------------------------------------------------------------ encoding
def _encode_batch(report: CaseReport, batch: dict, path: Path, tok) -> list[dict[str, list[int]]]:
    contexts = C.field(batch, "context_text", list, path)
    completions = C.field(batch, "completion_text", list, path)
    seq_len = C.field(batch, "lora_seq_len", int, path)
    ids, mask = C.int_rows(batch, "input_ids_unpadded", path), C.int_rows(batch, "loss_mask_on_input_ids", path)
    if not len(contexts) == len(completions) == len(ids) == len(mask):
        raise C.CaseFormatError(f"{path}: context_text, completion_text, input_ids_unpadded and "
                                "loss_mask_on_input_ids must have one entry per row")
    examples = [encode_pair(tok, s, t, seq_len) for s, t in zip(contexts, completions)]
    report.same_items("token ids (encode_pair)", [e["input_ids"] for e in examples], ids)
    report.same_items("loss positions (encode_pair)", [e["loss_mask"] for e in examples], mask)
    return examples


# ------------------------------------------------------------------------- forward, loss
def _trainer_cfg(**over: Any) -> dict[str, Any]:
    """trainer=default (LoRA's recipe, schema.TrainerConfig) + the case's values, quiet and checkpoint-free."""
    cfg = defaults_of("trainer")
    cfg.update(optimizer="lora_adamw", epochs=1, progress=False, eval_dev_loss=False, checkpoint_every=0,
               keep_epoch_checkpoints=False, device="cpu")
    cfg.update(over)
    return cfg


def _pipeline(trainer_cfg: dict[str, Any], tok):
    from lodabench.tasks.generation import GenerationPipeline

    # data=e2e: LoRA's NLG code is E2E's (the pipeline looks up the task's scorer; nothing is scored here)
    cfg = OmegaConf.create({"trainer": trainer_cfg, "data": {"name": "e2e"}})
    return GenerationPipeline(cfg, None, tok, torch.device("cpu"))


def _check_logits(report: CaseReport, case_dir: Path, model, examples, tok) -> None:
    path = case_dir / "expected_logits_summary.safetensors"
    expected = C.read_tensors(path)
    batch = _pipeline(_trainer_cfg(), tok).collate(examples)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    valid = C.tensor(expected, "valid", path).bool()
    if valid.shape != logits.shape[:2]:
        raise C.CaseFormatError(f"{path}: 'valid' has shape {tuple(valid.shape)}, the batch is {tuple(logits.shape[:2])}")
    ours = {"lse": logits.logsumexp(-1), "max": logits.max(-1).values, "eos_50256": logits[..., EOS_ID],
            "vocab_0_255": logits[..., :256]}
    for key in SUMMARY_KEYS:
        report.max_abs(f"logits: {key}", ours[key][valid], C.tensor(expected, key, path).float()[valid], TOL_LOGITS)
    argmax = logits.argmax(-1)[valid].tolist()
    report.same_items("logits: argmax", argmax, C.tensor(expected, "argmax", path)[valid].tolist())


def _check_loss_and_grads(report: CaseReport, case_dir: Path, model, examples, tok) -> None:
    loss_path = case_dir / "expected_loss.json"
    expected = C.read_case_json(loss_path)
    batch = _pipeline(_trainer_cfg(), tok).collate(examples)
    for smoothing in (0.0, 0.1):
        key = f"loss_label_smooth_{smoothing}"
        want = C.field(expected, key, (int, float), loss_path)
        pipe = _pipeline(_trainer_cfg(label_smoothing=smoothing), tok)
        model.zero_grad(set_to_none=True)
        loss = pipe.loss(model, batch)
        report.max_abs(f"loss (label smoothing {smoothing})", loss.detach(), torch.tensor(want), TOL_LOSS)
        if smoothing == 0.1:  # the README: gradients of the label_smooth 0.1 loss
            loss.backward()
            _check_grads(report, case_dir, model)


def _check_grads(report: CaseReport, case_dir: Path, model) -> None:
    path = case_dir / "expected_lora_grads.safetensors"
    expected = C.read_tensors(path)
    params = _lora_params_or_fail(model, list(expected), path)
    diffs = [report_diff(params[g].grad, expected[g]) for g in expected]
    report.max_abs("LoRA gradients (8 tensors)", torch.tensor(diffs), torch.zeros(len(diffs)), TOL_GRADS)


def report_diff(ours: torch.Tensor | None, expected: torch.Tensor) -> float:
    if ours is None or ours.shape != expected.shape:
        return math.inf
    return float((ours.double() - expected.double()).abs().max())


def _lora_params_or_fail(model, names: list[str], path: Path) -> dict[str, torch.nn.Parameter]:
    try:
        return lora_params(model, names)
    except KeyError as exc:
        raise C.CaseFormatError(f"{path}: {exc.args[0]!r} is not a LoRA tensor of the tiny model") from None


# ------------------------------------------------------------------------ optimizer steps
def _check_steps(report: CaseReport, case_dir: Path, tok, batch: dict, data_root: Path | None) -> None:
    from lodabench.train.trainer import Trainer

    run_path = case_dir / "optimizer_run.json"
    run = C.read_case_json(run_path)
    steps, bsz = C.field(run, "steps", int, run_path), C.field(run, "batch_size", int, run_path)
    lrs = [float(x) for x in C.field(run, "lr_used_at_each_step", list, run_path)]
    losses = [float(x) for x in C.field(run, "loss_at_each_step_before_update", list, run_path)]
    rows = C.field(run, "optimizer_rows_0based", list, run_path)
    if len(rows) != steps * bsz or len(lrs) != steps or len(losses) != steps:
        raise C.CaseFormatError(f"{run_path}: needs steps x batch_size rows and one lr and one loss per step")
    pairs = _lora_rows(batch, case_dir / "batch.json", rows, data_root)
    seq_len = C.field(run, "lora_seq_len", int, run_path)
    examples = [encode_pair(tok, s, t, seq_len) for s, t in pairs]
    cfg = _trainer_cfg(lr=max(lrs), warmup_steps=_warmup_of(lrs), batch_size=bsz, max_steps=steps, max_length=seq_len)
    model = build_case_model(case_dir / "weights.safetensors")
    expected_path = case_dir / "expected_lora_params_after_steps.safetensors"
    expected = C.read_tensors(expected_path)
    with tempfile.TemporaryDirectory(prefix="lodabench-reference-") as tmp:
        pipe = _pipeline(cfg, tok)
        trainer = Trainer(model, cfg, seed=0, run_dir=Path(tmp), train_examples=examples, collate=pipe.collate,
                          loss_fn=pipe.loss)
        ours_lr, ours_loss, diffs = [], [], []
        for k in range(1, steps + 1):
            ours_lr.append(trainer.optimizer.param_groups[0]["lr"])
            ours_loss.append(trainer._step(examples[(k - 1) * bsz:k * bsz]))
            diffs.append(_step_diff(model, expected, expected_path, k))
    report.max_abs("lr at each step (schedule)", torch.tensor(ours_lr), torch.tensor(lrs), 1e-12)
    report.max_abs("loss before each step", torch.tensor(ours_loss), torch.tensor(losses), TOL_LOSS)
    for k, diff in enumerate(diffs, 1):
        report.max_abs(f"LoRA params after step {k}", torch.tensor([diff]), torch.zeros(1), TOL_PARAMS)


def _step_diff(model, expected: dict[str, torch.Tensor], path: Path, k: int) -> float:
    names = [n for n in expected if n.startswith(f"step{k}/")]
    if not names:
        raise C.CaseFormatError(f"{path}: no tensors step{k}/<name>")
    params = _lora_params_or_fail(model, [n.split("/", 1)[1] for n in names], path)
    return max(report_diff(params[n.split("/", 1)[1]].detach(), expected[n]) for n in names)


def _warmup_of(lrs: list[float]) -> int:
    """Warm-up steps of a linear schedule from its per-step lr: the step at which the peak is reached
    (LoRA's schedule starts at factor 0 and rises by 1/warmup per step). The lrs are then compared."""
    return max(range(len(lrs)), key=lambda i: (lrs[i], -i))


def _lora_rows(batch: dict, batch_path: Path, rows: list, data_root: Path | None) -> list[tuple[str, str]]:
    """(context, completion) of every optimizer row, from LoRA's valid.txt (format_converting_e2e.py:
    split on '||', both stripped), cross-checked with batch.json's rows."""
    split_file = C.field(batch, "split_file", str, batch_path)
    name = Path(split_file).name
    if data_root is None or not (data_root / "e2e_lora" / name).is_file():
        raise C.CaseFormatError(f"{batch_path}: the optimizer rows are lines of LoRA's {split_file}, expected at "
                                f"<data_root>/e2e_lora/{name} (data root {data_root}); pass --data-root or set "
                                "LODABENCH_DATA_ROOT (../shared/data/MANIFEST.md, section e2e_lora).")
    lines = [ln for ln in (data_root / "e2e_lora" / name).read_text(encoding="utf-8").split("\n") if ln.strip()]
    pairs = [tuple(part.strip() for part in ln.strip().split("||")) for ln in lines]
    known = zip(C.field(batch, "line_indices_0based", list, batch_path), batch["context_text"], batch["completion_text"])
    for i, context, completion in known:
        if pairs[i] != (context, completion):
            raise C.CaseFormatError(f"{data_root / 'e2e_lora' / name}: line {i + 1} is not the row batch.json gives "
                                    f"({context!r}||{completion!r}); is it LoRA's {split_file}?")
    return [pairs[i] for i in rows]
