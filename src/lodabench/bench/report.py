"""The goals checked on every record, and the Markdown summary written next to the JSON.

Every goal is a ratio measured within one run (paired per round, median over rounds; see
timing.py). A goal is "met" when the median ratio is on the right side of its target; the
margin says by how much (for "<=" goals a negative margin is headroom). The IQR of the paired
ratios is printed next to it, and "(IQR spans target)" marks a goal whose target lies inside that
spread: met or not, that call is within the run's noise.
"""

from __future__ import annotations

from typing import Any


def _goal(name: str, where: str, stats: dict | None, op: str, target: float, tol: float = 0.0) -> dict[str, Any]:
    if stats is None:
        return {"goal": name, "where": where, "measured": None, "met": None, "note": "not measured in this run"}
    v = stats["median"]
    if op == "<=":
        met, margin = v <= target, v / target - 1
    elif op == ">=":
        met, margin = v >= target, v / target - 1
    else:  # "==" within +-tol
        met, margin = abs(v - target) <= tol, v - target
    lo, hi = (target - tol, target + tol) if op == "==" else (target, target)
    # The target (band) lies inside the IQR of the paired ratios: met or not, the call is noise.
    within_noise = stats["q1"] <= hi and stats["q3"] >= lo
    return {"goal": name, "where": where, "measured": v, "iqr": [stats["q1"], stats["q3"]], "target": f"{op} {target}"
            + (f" +- {tol}" if op == "==" else ""), "met": bool(met), "margin": round(margin, 4),
            "within_noise": bool(within_noise)}


def evaluate_goals(record: dict[str, Any]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []
    for tr in record.get("train", []):
        fam = tr["family"]
        for shape, s in tr["shapes"].items():
            where = f"{tr['model']} train step {shape}"
            to_lora, to_peft = s["ratio_to_lora"], s["ratio_to_peft_lora"]
            if fam != "gpt2":  # PEFT adapts the same matrices (query, value) only on the Linear families
                goals.append(_goal("lora <= 1.00x PEFT LoRA", where, to_peft.get("lora"), "<=", 1.00))
            goals.append(_goal("loda <= 1.05x lora", where, to_lora.get("loda"), "<=", 1.05))
            goals.append(_goal("loda_plus <= 1.10x lora", where, to_lora.get("loda_plus"), "<=", 1.10))
            goals.append(_goal("condlora <= 1.05x lora", where, to_lora.get("condlora"), "<=", 1.05))
    inf = record.get("infer")
    if inf:
        where = f"{inf['model']} inference forward {inf['shape']}"
        for m in ("lora_merged", "dora_merged", "condlora_merged"):
            goals.append(_goal(f"{m} = 1.00x base (+-2%)", where, inf["forward_ratio_to_base"].get(m), "==", 1.0, 0.02))
        r = min(inf["ranks"]) if inf["ranks"] else None
        sp = inf["projection_speedup_vs_dense"]
        label = f"r_loda_R{r}"
        goals.append(_goal(f"R-LoDA R={r} q/k/v projection >= 2x faster than dense (with its LoDA adapter)",
                           f"{inf['model']} layer-0 projection {inf['shape']}", sp.get(label), ">=", 2.0))
    opt = record.get("optim")
    if opt:
        goals.append(_goal("lora_adamw (fused) >= 2x faster than lora_adamw_loop per step", f"{opt['shapes']}, "
                           f"{opt['device']}", opt["speedup_stats"], ">=", 2.0))
    dec = record.get("decode")
    if dec:
        goals.append({"goal": "decoder (hf_compatible) output == transformers generate", "where": dec["model"],
                      "measured": dec["identical_outputs"], "met": dec["identical_outputs"],
                      "note": f"mismatched items: {dec['mismatched_items']}"})
    return goals


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _fmt_stats(s: dict, unit: str = "") -> str:
    return f"{_num(s['median'])}{unit} [{_num(s['q1'])}-{_num(s['q3'])}]"


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [f"# lodabench benchmark: {record['name']}", "",
             f"- started {record['started']}, wall time {record.get('wall_time_s', '?')} s, mode "
             f"{'quick' if record['quick'] else 'full'}, warm-up {record['warmup']} + {record['reps']} repetitions "
             "(round-robin; medians, [q1-q3])",
             f"- machine: {m['cpu']} x{m['cpu_count']}, {m.get('gpu', 'no GPU')}, device {m['device']}, "
             f"torch {m['torch']} ({m['torch_num_threads']} threads), transformers {m['transformers']}, "
             f"peft {m['peft']}; load average at start {m['load_average_at_start']}",
             f"- command: `{record['command']}`", ""]
    if record.get("note"):
        lines += [f"> {record['note']}", ""]
    goals = record.get("goals", [])
    if goals:
        lines += ["## Goals", "", "| goal | where | measured [IQR] | target | met | margin |", "|---|---|---|---|---|---|"]
        for g in goals:
            iqr = f" [{g['iqr'][0]}-{g['iqr'][1]}]" if g.get("iqr") else ""
            met = {True: "met", False: "NOT met", None: "-"}[g["met"]] + (" (IQR spans target)" if g.get("within_noise") else "")
            margin = f"{g['margin']:+.1%}" if isinstance(g.get("margin"), float) else g.get("note", "")
            lines.append(f"| {g['goal']} | {g['where']} | {g['measured']}{iqr} | {g.get('target', '')} | {met} | {margin} |")
        lines.append("")
    for tr in record.get("train", []):
        for shape, s in tr["shapes"].items():
            lines += [f"## Training step: {tr['model']} {shape}", "",
                      "| method | trainable | step ms | / lora | / PEFT LoRA | memory MiB: total (activations) "
                      "| aten ops, q module fwd+bwd |",
                      "|---|---|---|---|---|---|---|"]
            for k, st in s["step_ms"].items():
                rl, rp, mem = s["ratio_to_lora"].get(k), s["ratio_to_peft_lora"].get(k), s["memory_mib"][k]
                mem_s = f"{mem['total']:.1f} ({mem['activations']:.1f})"
                if "cuda_step_peak" in mem:
                    mem_s += f"; CUDA step peak {mem['cuda_step_peak']:.1f}"
                lines.append(f"| {k} | {tr['params'][k]['trainable']:,} | {_fmt_stats(st)} | "
                             f"{_fmt_stats(rl) if rl else '-'} | {_fmt_stats(rp) if rp else '-'} | {mem_s} | "
                             f"{tr['params'][k].get('aten_ops_q_module_fwd_bwd') or '-'} |")
            if tr["family"] == "gpt2":
                lines += ["", "PEFT LoRA on GPT-2 adapts all of c_attn (q, k and v, one A shared by the three): "
                          "not the same matrices as our LoRA (q, v). Compare LoRA to PEFT on RoBERTa."]
            lines.append("")
    inf = record.get("infer")
    if inf:
        lines += [f"## Inference: {inf['model']} {inf['shape']}", "", "| variant | forward ms | / base |", "|---|---|---|"]
        for k, st in inf["forward_ms"].items():
            lines.append(f"| {k} | {_fmt_stats(st)} | {_fmt_stats(inf['forward_ratio_to_base'][k])} |")
        lines += ["", "| layer-0 q/k/v projection | ms | speed-up vs dense |", "|---|---|---|"]
        for k, st in inf["projection_ms"].items():
            lines.append(f"| {'dense (base)' if k == 'base' else k} | {_fmt_stats(st)} | "
                         f"{_fmt_stats(inf['projection_speedup_vs_dense'][k])} |")
        lines.append("")
    opt = record.get("optim")
    if opt:
        lines += [f"## Optimizer step: {opt['shapes']}, {opt['tensors']} tensors, {opt['device']}", "",
                  "| optimizer | ms per step |", "|---|---|",
                  f"| lora_adamw_loop | {_fmt_stats(opt['loop_ms_stats'])} |",
                  f"| lora_adamw (fused) | {_fmt_stats(opt['fused_ms_stats'])} |", "",
                  f"speed-up loop / fused: {_fmt_stats(opt['speedup_stats'])}; bit-identical: {opt['bit_identical']}", ""]
    dec = record.get("decode")
    if dec:
        lines += [f"## Beam search: {dec['model']}, beam {dec['num_beams']}, {dec['max_new_tokens']} new tokens, "
                  f"{dec['n_prompts']} prompts ({dec['prompts']})", "",
                  "| decoder | wall ms | tokens/s |", "|---|---|---|"]
        for k, st in dec["wall_ms"].items():
            lines.append(f"| {k} | {_fmt_stats(st)} | {dec['tokens_per_s'][k]} |")
        lines += ["", f"ours / generate: {_fmt_stats(dec['ratio_ours_to_generate'])}; identical outputs: "
                  f"{dec['identical_outputs']}", ""]
    sc = record.get("score")
    if sc:
        lines += [f"## Scoring: E2E test ({sc['items']} items, {sc['references']} refs)", "",
                  f"score_e2e wall time: {_fmt_stats(sc['wall_s'], ' s')}", "",
                  "| piece (one run each) | s |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sc["breakdown_s_single_run"].items()]
        lines.append("")
    for k, v in record.get("skipped", {}).items():
        lines.append(f"- {k} skipped: {v}")
    return "\n".join(lines) + "\n"


def rerender(json_path: str) -> None:
    """Re-evaluate the goals and rewrite the Markdown of an existing record (after a report.py
    change): ``python -m lodabench.bench.report results/bench/NAME.json``."""
    from pathlib import Path

    from lodabench.io import atomic_write_json, atomic_write_text, read_json

    record = read_json(json_path)
    if "condlora" in record or "s_loda" in record:  # a cost-claims record: its own tables, no goals
        from lodabench.bench.cost_claims import rewrite_markdown

        rewrite_markdown(Path(json_path))
        return
    record["goals"] = evaluate_goals(record)
    atomic_write_json(json_path, record)
    atomic_write_text(Path(json_path).with_suffix(".md"), markdown(record))


if __name__ == "__main__":
    import sys

    for path in sys.argv[1:]:
        rerender(path)
