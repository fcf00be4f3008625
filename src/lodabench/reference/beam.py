"""Beam cases: prompts, beam search token ids, hypothesis text and reference groups.

lodabench's evaluation path, step by step as ``GenerationPipeline.evaluate`` takes it:
``data.group_pairs`` (one item per unique source, references in file order: gpt2_decode.py's
``refer_dict``), ``collate.encode_source`` with the last ``seq_len - eval_len`` tokens kept,
``decoding.decode_tokens`` (``impl: lora``) and ``decoding.tokens_to_text`` with the decoding config
``decoding=beam`` (LoRA's README arguments, decoding.DecodingConfig) + the case's settings, then
``scoring.textio.write_hypotheses`` / ``write_reference_groups``, read back and compared with LoRA's
``expected_pred.txt`` / ``expected_ref.txt`` item by item. (The files are compared as parsed: LoRA
ends the reference file with a blank line after the last group, lodabench does not; both readers
give the same groups.)

``expected_beam.json``'s ``settings`` carry ``lp``, ``seq_len`` and ``eval_len``; a case may also give
``beam``, ``no_repeat_ngram_size``, ``repetition_penalty``, ``min_length``, ``eos_token_id`` (LoRA's
argument names); absent ones are LoRA's README values, which decoding=beam holds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from lodabench.tasks import decoding
from lodabench.tasks import Pair, group_pairs
from lodabench.tasks.collate import encode_source
from lodabench.config.schema import defaults_of
from lodabench.reference import case as C
from lodabench.reference.model import build_case_model
from lodabench.reference.report import CaseReport
from lodabench.scoring.textio import read_hypotheses, read_reference_groups, write_hypotheses, write_reference_groups

# gpt2_beam.py argument -> lodabench decoding key
SETTING_KEYS = {"lp": "length_penalty", "eval_len": "max_new_tokens", "beam": "num_beams",
                "no_repeat_ngram_size": "no_repeat_ngram_size", "repetition_penalty": "repetition_penalty",
                "min_length": "min_new_tokens"}


def check_beam(case_dir: Path, tok) -> CaseReport:
    report = CaseReport(case_dir.name, "beam")
    beam_path = case_dir / "expected_beam.json"
    expected = C.read_case_json(beam_path)
    settings = C.field(expected, "settings", dict, beam_path)
    wanted = C.field(expected, "items", list, beam_path)
    cfg = _decoding_config(settings, beam_path)
    items = group_pairs(_input_pairs(case_dir / "decode_input_lines.json"))
    labels = [f"MR {i} {it.source[:40]!r}" for i, it in enumerate(items)]
    report.same_items("MRs (group_pairs, first appearance)", [it.source for it in items],
                      [C.field(w, "context", str, beam_path) for w in wanted])
    prompt_len = max(C.field(settings, "seq_len", int, beam_path) - cfg.max_new_tokens, 1)  # as the pipeline
    prompts = [encode_source(tok, it.source, max_length=prompt_len) for it in items]
    report.same_items("prompt ids (encode_source)", prompts, _ids(wanted, "query_ids", beam_path), labels)
    eos_ids = decoding.eos_token_ids(tok, cfg)
    _check_eos(report, settings, eos_ids)
    ids = _decode(case_dir, prompts, cfg, eos_ids, tok)
    report.same_items("beam token ids (decode_tokens)", ids, _ids(wanted, "generated_ids", beam_path), labels)
    padded = [t + [0] * (cfg.max_new_tokens - len(t)) for t in ids]
    report.same_items("best_sequence rows (ids + zeros)", padded, _ids(wanted, "beam_best_sequence", beam_path), labels)
    _check_files(report, case_dir, [decoding.tokens_to_text(tok, t, cfg) for t in ids],
                 [list(it.references) for it in items], labels)
    return report


def _ids(wanted: list, key: str, path: Path) -> list[list[int]]:
    """``key`` of every expected item, each a list of token ids."""
    return C.int_rows({key: [C.field(w, key, list, path) for w in wanted]}, key, path)


def _decoding_config(settings: dict[str, Any], path: Path) -> decoding.DecodingConfig:
    node = defaults_of("decoding", "beam")  # decoding=beam: LoRA's beam settings
    node.update({ours: settings[theirs] for theirs, ours in SETTING_KEYS.items() if theirs in settings})
    node["progress"] = False
    try:
        return decoding.decoding_config(node)
    except Exception as exc:  # a value of the case lodabench refuses
        raise C.CaseFormatError(f"{path}: settings {settings} give an invalid decoding config ({exc})") from exc


def _input_pairs(path: Path) -> list[Pair]:
    lines = C.read_case_json(path)
    if not isinstance(lines, list):
        raise C.CaseFormatError(f"{path}: expected a list of {{'context', 'completion'}} objects")
    return [Pair(C.field(ln, "context", str, path), C.field(ln, "completion", str, path).strip()) for ln in lines]


def _check_eos(report: CaseReport, settings: dict[str, Any], eos_ids: list[int]) -> None:
    """LoRA's README: --eos_token_id 628 on top of the default [50256]; a case may state its own list."""
    want = settings.get("eos_token_id", [50256, 628])
    report.same_items("EOS ids (tokenizer EOS + decoding.extra_eos)", [sorted(eos_ids)], [sorted(want)])


def _decode(case_dir: Path, prompts: list[list[int]], cfg, eos_ids: list[int], tok) -> list[list[int]]:
    model = build_case_model(case_dir / "weights.safetensors")
    pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else eos_ids[0]
    with torch.no_grad():
        return decoding.decode_tokens(model, prompts, cfg, eos_ids, pad_id)


def _check_files(report: CaseReport, case_dir: Path, hyps: list[str], refs: list[list[str]], labels) -> None:
    with tempfile.TemporaryDirectory(prefix="lodabench-reference-") as tmp:
        write_hypotheses(Path(tmp) / "hyp.txt", hyps)
        write_reference_groups(Path(tmp) / "refs.txt", refs)
        ours_h, ours_r = read_hypotheses(Path(tmp) / "hyp.txt"), read_reference_groups(Path(tmp) / "refs.txt")
    pred_path, ref_path = C.require(case_dir / "expected_pred.txt"), C.require(case_dir / "expected_ref.txt")
    try:
        want_h, want_r = read_hypotheses(pred_path), read_reference_groups(ref_path)
    except Exception as exc:
        raise C.CaseFormatError(f"{pred_path} / {ref_path}: unreadable ({exc})") from exc
    report.same_items("hypothesis text (hyp.txt vs expected_pred.txt)", ours_h, want_h, labels)
    report.same_items("reference groups (refs.txt vs expected_ref.txt)", ours_r, want_r, labels)
