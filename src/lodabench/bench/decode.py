"""Beam-search throughput: the harness's decoder (``lodabench.tasks.decoding`` with ``hf_compatible``)
against transformers ``generate`` on the same prompts, with the outputs asserted identical.

Both run through ``decoding.decode_tokens`` (same batching, same left padding), one with
``impl=lora, hf_compatible=true`` (our loop with HF's rules) and one with ``impl=hf``
(``model.generate``); the only difference is the search loop. Prompts are the first unique MRs
of the real E2E test set (LoRA's source format + separator, as the generation pipeline encodes
them) when the data root and the GPT-2 tokenizer exist, else fixed random token ids. The model
is a random-init GPT-2 small (12 layers, d = 768) -- small enough for CPU; random weights rarely
emit EOS, so nearly every hypothesis runs the full ``max_new_tokens``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from lodabench.bench.timing import Stats, paired_ratio, round_robin
from lodabench.bench.variants import build_base
from lodabench.tasks.decoding import decode_tokens, decoding_config


def e2e_prompts(n: int) -> tuple[list[list[int]], str]:
    """First ``n`` unique test MRs encoded as decoding prompts, or random ids (and why)."""
    try:
        from lodabench.tasks import e2e, group_pairs
        from lodabench.tasks.collate import encode_source
        from lodabench.models.pretrained import default_gpt2_tokenizer_location
        from lodabench.paths import resolve_data_root
        from transformers import AutoTokenizer

        root = resolve_data_root()
        if root is None or not (root / "e2e").is_dir():
            raise FileNotFoundError("no data root with e2e/")
        tok = AutoTokenizer.from_pretrained(default_gpt2_tokenizer_location())
        items = group_pairs(e2e.load_split("test", root))[:n]
        return [encode_source(tok, it.source) for it in items], "e2e test MRs (first unique sources)"
    except Exception as exc:  # noqa: BLE001 - any missing piece: fall back, and say why
        g = torch.Generator().manual_seed(2)
        return ([torch.randint(3, 50000, (20 + 3 * i,), generator=g).tolist() for i in range(n)],
                f"random token ids ({type(exc).__name__}: {exc})")


def run_decoding(model_name: str, n_prompts: int, num_beams: int, max_new_tokens: int, warmup: int, reps: int,
                 device: torch.device | str = "cpu", log: Callable[[str], None] = print) -> dict[str, Any]:
    model = build_base(model_name, device=device).eval()
    prompts, source = e2e_prompts(n_prompts)
    eos_ids, pad_id = [50256, 628], 50256
    common = dict(num_beams=num_beams, max_new_tokens=max_new_tokens, length_penalty=0.9,
                  no_repeat_ngram_size=4, batch_size=n_prompts, progress=False)
    cfgs = {"lodabench_hf_compatible": decoding_config(common, impl="lora", hf_compatible=True),
            "transformers_generate": decoding_config(common, impl="hf")}
    outputs: dict[str, list[list[int]]] = {}

    def run(name: str) -> Callable[[], None]:
        def go() -> None:
            outputs[name] = decode_tokens(model, prompts, cfgs[name], eos_ids, pad_id)
        return go

    times = round_robin({k: run(k) for k in cfgs}, warmup, reps, device,
                        on_round=lambda r: log(f"[decode] round {r + 1}/{warmup + reps}"))
    ours, hf = outputs["lodabench_hf_compatible"], outputs["transformers_generate"]
    mismatches = [i for i, (a, b) in enumerate(zip(ours, hf)) if a != b]
    n_tokens = sum(len(t) for t in ours)
    return {
        "model": model_name, "prompts": source, "n_prompts": len(prompts),
        "prompt_lengths": [len(p) for p in prompts], "num_beams": num_beams, "max_new_tokens": max_new_tokens,
        "generated_tokens": n_tokens,
        "wall_ms": {k: Stats.of(t).as_dict(1e3, 1) for k, t in times.items()},
        "tokens_per_s": {k: round(n_tokens / Stats.of(t).median, 2) for k, t in times.items()},
        "ratio_ours_to_generate": paired_ratio(times, "lodabench_hf_compatible", "transformers_generate").as_dict(1, 3),
        "identical_outputs": not mismatches and len(ours) == len(hf),
        "mismatched_items": mismatches,
    }
