"""Check lodabench against microsoft/LoRA's own NLG code on a golden case: ``python -m lodabench.reference check DIR...``.

A case folder (format of ../shared/golden/lora_nlg/, README there) holds tiny GPT-2 + LoRA weights
and what LoRA's unmodified code computed from them. ``check_case`` runs lodabench's OWN code path on
the same inputs -- the model built by ``models.load_model`` + ``methods.apply_method(method=lora)``,
``collate.encode_pair`` / ``encode_source``, ``GenerationPipeline.loss`` (``losses.lm_loss``),
``Trainer._step`` with ``trainer.optimizer=lora_adamw`` and the linear warm-up schedule,
``decoding.decode_tokens`` / ``tokens_to_text``, ``data.group_pairs`` and the hyp/ref file writers --
and reports, per quantity, the max abs difference or the mismatching items (``report.py`` has the
tolerances: loss and logits 1e-5, gradients and parameters 1e-6, token ids and texts identical).

Exit status of the CLI: 0 every case agrees, 1 some quantity differs, 2 a case folder is malformed
(the message names the file).
"""

from __future__ import annotations

from pathlib import Path

from lodabench.reference.case import CaseFormatError, case_kind
from lodabench.reference.report import CaseReport

__all__ = ["CaseFormatError", "CaseReport", "check_case"]


def check_case(case_dir: Path, tok, data_root: Path | None = None) -> CaseReport:
    """Compare lodabench with one golden case; CaseFormatError when the folder is malformed."""
    case_dir = Path(case_dir)
    kind = case_kind(case_dir)
    if kind == "beam":
        from lodabench.reference.beam import check_beam
        return check_beam(case_dir, tok)
    from lodabench.reference.forward import check_forward
    return check_forward(case_dir, tok, data_root)
