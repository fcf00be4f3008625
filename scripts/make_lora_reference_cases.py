"""Make golden case folders (format of ../shared/golden/lora_nlg/) by running microsoft/LoRA's own NLG code.

Nothing of LoRA is in this file: it imports LoRA's modules (``examples/NLG/src``: model.py, data_utils.py,
optimizer.py, gpt2_ft.py, gpt2_beam.py; ``loralib``) from a checkout given with ``--lora-dir`` and runs its
scripts (format_converting_e2e.py, gpt2_encode.py, gpt2_decode.py) unmodified as subprocesses. It neither
downloads nor builds LoRA. Re-make tests/golden/lora_nlg_extra/ with::

    git --git-dir=<clone of microsoft/LoRA> worktree add /tmp/lora_ref c4593f060e6a368d7bb5af5273b8e42810cdef90
    # needed: loralib/, examples/NLG/{src,vocab}/, examples/NLG/data/e2e/{valid,test}.txt (these two equal
    # ../shared/data/e2e_lora/); from a partial clone, `git show <commit>:<path>` file by file does the same
    PY=/work/main/.venv/bin/python   # torch 2.13 CPU
    $PY scripts/make_lora_reference_cases.py --lora-dir /tmp/lora_ref train --seed 2 --out /tmp/seed2.safetensors
    $PY scripts/make_lora_reference_cases.py --lora-dir /tmp/lora_ref beam --weights /tmp/seed2.safetensors \
        --mrs 50..79 --lp 0.8 --eval-len 64 --out tests/golden/lora_nlg_extra/beam_trained2_lp08
    $PY scripts/make_lora_reference_cases.py --lora-dir /tmp/lora_ref fwd --weights /tmp/seed2.safetensors \
        --split test --rows 2000..2007 --opt-rows 2000..2047 --out tests/golden/lora_nlg_extra/fwd_opt_trained2_test2000

(the exact commands of each committed case are in tests/golden/README.md). Everything runs
on CPU in float32 with one thread; every parameter is rounded to bfloat16 before any reference output is
computed, as the shared cases were made. ``fwd --seed 1 --rows 0..7 --opt-rows 0..47`` and ``beam`` on the
shared ``beam_trained_lp09`` weights with ``--mrs 0..29 --lp 0.9`` re-make the shared cases file for file, and
``train --seed 7`` re-makes the shared trained weights byte for byte (how this recipe was checked).

gpt2_encode.py imports ``progress.bar.Bar`` and never uses it; when the ``progress`` package is absent a
one-line stand-in module is put on that subprocess's path (a temporary folder), nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# ../shared/golden/lora_nlg/README.md, "The tiny model (all cases)"
TINY = dict(n_embd=32, n_layer=2, n_head=4, lora_attn_dim=4, lora_attn_alpha=32, lora_dropout=0.0)
EOS, NEWLINES = 50256, 628
LORA_COMMIT = "c4593f060e6a368d7bb5af5273b8e42810cdef90"


# ----------------------------------------------------------------------------------- LoRA's code
def lora_modules(lora_dir: Path) -> Namespace:
    """LoRA's modules, imported from its checkout (examples/NLG/src on sys.path, loralib from the root)."""
    src = lora_dir / "examples" / "NLG" / "src"
    if not (src / "gpt2_beam.py").is_file() or not (lora_dir / "loralib" / "layers.py").is_file():
        sys.exit(f"{lora_dir}: not a microsoft/LoRA checkout (examples/NLG/src/gpt2_beam.py, loralib/ expected)")
    sys.path[:0] = [str(src), str(lora_dir)]
    saved_argv, sys.argv = sys.argv, sys.argv[:1]  # gpt2_ft/gpt2_beam build argparse parsers at import
    try:
        import data_utils, gpt2_beam, gpt2_ft, loralib, model, optimizer  # noqa: E401
    finally:
        sys.argv = saved_argv
    return Namespace(data_utils=data_utils, gpt2_beam=gpt2_beam, gpt2_ft=gpt2_ft, loralib=loralib, model=model,
                     optimizer=optimizer)


def one_process_group() -> None:
    """gpt2_beam/gpt2_ft call torch.distributed (gather, barrier): a gloo group of world size 1."""
    import torch.distributed as dist

    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        dist.init_process_group("gloo", rank=0, world_size=1)


def run_script(lora_dir: Path, name: str, *args: str) -> None:
    src = lora_dir / "examples" / "NLG" / "src"
    with tempfile.TemporaryDirectory() as stub:
        path = [str(src)]
        try:
            import progress.bar  # noqa: F401
        except ImportError:  # gpt2_encode.py imports it and never uses it
            (Path(stub) / "progress").mkdir()
            (Path(stub) / "progress" / "__init__.py").write_text("")
            (Path(stub) / "progress" / "bar.py").write_text("Bar = None\n")
            path.append(stub)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, str(src / name), *args], check=True, env=env, cwd=src,
                       stdout=subprocess.DEVNULL)


def formatted_and_encoded(lora_dir: Path, split: str, work: Path) -> tuple[list[dict], list[dict]]:
    """LoRA README step 1 on ``data/e2e/<split>.txt``: format_converting_e2e.py, gpt2_encode.py --add_bos --add_eos."""
    raw = lora_dir / "examples" / "NLG" / "data" / "e2e" / f"{split}.txt"
    fmt, enc = work / f"{split}_formatted.jsonl", work / f"{split}.jsonl"
    if not enc.is_file():
        run_script(lora_dir, "format_converting_e2e.py", str(raw), str(fmt))
        run_script(lora_dir, "gpt2_encode.py", "--vocab", str(lora_dir / "examples" / "NLG" / "vocab"),
                   "--input", str(fmt), "--output", str(enc), "--add_bos", "--add_eos")
    return [json.loads(x) for x in fmt.read_text().splitlines()], [json.loads(x) for x in enc.read_text().splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------- weights
def new_model(L: Namespace, seed: int):
    torch.manual_seed(seed)
    return L.model.GPT2LMModel(L.model.GPT2Config(**TINY))


def round_bf16(model) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())


def golden_tensors(model) -> dict[str, torch.Tensor]:
    """LoRA's state dict in the golden names (HF GPT-2; c_attn's merged LoRA split into q and v)."""
    out = {}
    for name, t in model.state_dict().items():
        if name.startswith("lm_head.") or name.endswith(".attn.bias"):
            continue  # tied to wte / the causal-mask buffer
        if name.endswith("c_attn.lora_A") or name.endswith("c_attn.lora_B"):
            half = t.shape[0] // 2  # rows: q then v (enable_lora [True, False, True])
            stem, kind = name.rsplit(".", 1)
            out[f"{stem}.q.{kind}"], out[f"{stem}.v.{kind}"] = t[:half], t[half:]
        else:
            out[name] = t
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def load_golden(L: Namespace, path: Path):
    """LoRA's model holding a golden weights file (inverse of golden_tensors)."""
    model = new_model(L, 0)
    tensors = {k: v.float() for k, v in load_file(str(path)).items()}
    state = model.state_dict()
    with torch.no_grad():
        for name in state:
            if name.endswith("c_attn.lora_A") or name.endswith("c_attn.lora_B"):
                stem, kind = name.rsplit(".", 1)
                state[name].copy_(torch.cat([tensors[f"{stem}.q.{kind}"], tensors[f"{stem}.v.{kind}"]]))
            elif name in tensors:
                state[name].copy_(tensors[name])
    model.set_tied()
    return model


def save_weights(model, path: Path, metadata: dict[str, str] | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16) for k, v in golden_tensors(model).items()}, str(path),
              metadata=None if metadata is None else dict(sorted(metadata.items())))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_weights(source: Path, target: Path) -> str:
    """The same bytes (safetensors does not keep the order of metadata keys, so re-saving may reorder them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() != target.resolve():
        target.write_bytes(source.read_bytes())
    return hashlib.sha256(target.read_bytes()).hexdigest()


def init_fwd_weights(L: Namespace, seed: int):
    """fwd_opt recipe: LoRA's init after manual_seed(seed); then, in named_parameters() order, lora_B ~ N(0, 0.05),
    biases ~ N(0, 0.02), LayerNorm weights ~ 1 + 0.1 N(0, 1); bf16."""
    model = new_model(L, seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0.0, 0.05)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.02)
            elif ".ln_" in name and name.endswith(".weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    round_bf16(model)
    return model


# ----------------------------------------------------------------------------------------- fwd
def span(text: str) -> list[int]:
    a, b = text.split("..")
    return list(range(int(a), int(b) + 1))


def dataset_batch(L: Namespace, encoded_rows: list[dict], seq_len: int, work: Path) -> dict[str, torch.Tensor]:
    ds = L.data_utils.FT_Dataset(str(write_jsonl(work / "rows.jsonl", encoded_rows)), len(encoded_rows), seq_len)
    items = [ds[i] for i in range(len(encoded_rows))]
    return {k: torch.stack([it[k] for it in items]) for k in ("input", "target", "mask")}


def lora_grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_" in n}
    return golden_tensors_from(grads)


def golden_tensors_from(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in named.items():
        stem, kind = name.rsplit(".", 1)
        half = t.shape[0] // 2
        out[f"{stem}.q.{kind}"], out[f"{stem}.v.{kind}"] = t[:half].clone(), t[half:].clone()
    return out


def make_fwd(L: Namespace, a: argparse.Namespace) -> None:
    if (a.seed is None) == (a.weights is None):
        sys.exit("fwd: give --seed (the init recipe) or --weights (a trained model), one of them")
    out, lora_dir = Path(a.out), Path(a.lora_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fmt, enc = formatted_and_encoded(lora_dir, a.split, work)
        rows, opt_rows = span(a.rows), span(a.opt_rows)
        if a.weights:  # a trained model (e.g. `train`'s output) instead of the init recipe
            model = load_golden(L, Path(a.weights))
            sha = copy_weights(Path(a.weights), out / "weights.safetensors")
        else:
            model = init_fwd_weights(L, a.seed)
            sha = save_weights(model, out / "weights.safetensors")
        batch = [enc[i] for i in rows]
        write_batch_json(out, a.split, rows, [fmt[i] for i in rows], batch)
        forward_files(L, model, batch, out, work)
        steps = optimizer_files(L, out, [enc[i] for i in opt_rows], opt_rows, work)
    write_fwd_readme(L, out, a, sha, batch, steps)
    print(f"{out}: sha256 {sha}")


def write_batch_json(out: Path, split: str, rows: list[int], fmt: list[dict], enc: list[dict]) -> None:
    ids = [e["context"] + e["completion"] for e in enc]
    data = {"split_file": f"examples/NLG/data/e2e/{split}.txt", "line_indices_0based": rows,
            "context_text": [f["context"] for f in fmt], "completion_text": [f["completion"] for f in fmt],
            "context_ids": [e["context"] for e in enc], "completion_ids": [e["completion"] for e in enc],
            "input_ids_unpadded": ids,
            "loss_mask_on_input_ids": [[0] * len(e["context"]) + [1] * len(e["completion"]) for e in enc],
            "lora_seq_len": 512, "row_lengths": [len(x) for x in ids]}
    dump(out / "batch.json", data)


def forward_files(L: Namespace, model, batch: list[dict], out: Path, work: Path) -> None:
    b = dataset_batch(L, batch, 512, work)
    lengths = [len(e["context"]) + len(e["completion"]) for e in batch]
    for i, e in enumerate(batch):  # FT_Dataset's mask is the loss mask shifted by one (target[t] = input[t+1])
        assert b["mask"][i].sum() == len(e["completion"]), "FT_Dataset mask != completion tokens"
    longest = max(lengths)
    model.eval()
    with torch.no_grad():
        logits, _ = model(b["input"])
    logits = logits[:, :longest]
    valid = torch.tensor([[int(t < n) for t in range(longest)] for n in lengths], dtype=torch.uint8)
    save_file({"lse": logits.logsumexp(-1).contiguous(), "max": logits.max(-1).values.contiguous(),
               "argmax": logits.argmax(-1).contiguous(), "eos_50256": logits[..., EOS].contiguous(),
               "vocab_0_255": logits[..., :256].contiguous(), "valid": valid},
              str(out / "expected_logits_summary.safetensors"))
    _, loss0 = model(b["input"], lm_labels=b["target"], lm_mask=b["mask"], label_smooth=0.0)
    model.zero_grad(set_to_none=True)
    _, loss = model(b["input"], lm_labels=b["target"], lm_mask=b["mask"], label_smooth=0.1)
    loss.backward()
    save_file(lora_grads(model), str(out / "expected_lora_grads.safetensors"))
    dump(out / "expected_loss.json", {"loss_label_smooth_0.1": loss.item(), "loss_label_smooth_0.0": loss0.item(),
                                      "loss_tokens": int(b["mask"].sum())})


def optimizer_files(L: Namespace, out: Path, enc_rows: list[dict], rows: list[int], work: Path) -> dict:
    model = load_golden(L, out / "weights.safetensors")
    L.loralib.mark_only_lora_as_trainable(model)
    args = Namespace(lr=2e-4, weight_decay=0.01, correct_bias=True, adam_epislon=1e-6, no_decay_bias=False,
                     adam_beta1=0.9, adam_beta2=0.999, scheduler="linear", warmup_step=2, max_step=6, clip=0.0,
                     fp16=False)
    opt = L.optimizer.create_adam_optimizer_from_args(model, args)
    sched = L.optimizer.create_optimizer_scheduler(opt, args)
    params, lrs, losses = {}, [], []
    model.train()
    for k in range(1, 7):
        b = dataset_batch(L, enc_rows[8 * (k - 1):8 * k], 128, work)
        _, loss = model(b["input"], lm_labels=b["target"], lm_mask=b["mask"], label_smooth=0.1)
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(loss.item())
        L.gpt2_ft.optimizer_step(loss.mean(), opt, model, sched, args)
        lora = {n: p.detach() for n, p in model.named_parameters() if "lora_" in n}
        params.update({f"step{k}/{n}": t for n, t in golden_tensors_from(lora).items()})
    save_file(params, str(out / "expected_lora_params_after_steps.safetensors"))
    run = {"optimizer_rows_0based": rows, "steps": 6, "batch_size": 8,
           "batches": "step s uses rows [8(s-1), 8s) of optimizer_rows (no shuffling)", "lora_seq_len": 128,
           "lr_used_at_each_step": lrs, "loss_at_each_step_before_update": losses}
    dump(out / "optimizer_run.json", run)
    return run


def dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------------------- train
def make_train(L: Namespace, a: argparse.Namespace) -> None:
    """beam weights recipe: LoRA's gpt2_ft training from random init, all parameters trainable (README below)."""
    import itertools

    torch.manual_seed(110)
    random.seed(110)
    one_process_group()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, enc = formatted_and_encoded(Path(a.lora_dir), "valid", work)
        data = L.data_utils.FT_Dataset(str(write_jsonl(work / "train.jsonl", enc)), 8, 128)
        sampler = torch.utils.data.distributed.DistributedSampler(data, num_replicas=1, rank=0, seed=110)
        loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=0, shuffle=False, drop_last=True,
                                             sampler=sampler)
        model = new_model(L, a.seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("lora_B"):
                    p.normal_(0.0, 0.02)
        # "ALL parameters trainable" in the shared READMEs is LoRA's default: everything but c_attn.weight, which
        # loralib.MergedLinear freezes (the shared trained weights hold c_attn.weight exactly at its seed-7 init)
        args = Namespace(lr=5e-3, weight_decay=0.01, correct_bias=True, adam_epislon=1e-6, no_decay_bias=False,
                         adam_beta1=0.9, adam_beta2=0.999, scheduler="linear", warmup_step=30, max_step=a.steps,
                         clip=0.0, fp16=False, grad_acc=1, label_smooth=0.1, device="cpu", log_interval=50,
                         save_interval=10 ** 9, eval_interval=10 ** 9, rank=0, work_dir=str(work), platform="local",
                         dist=torch.distributed)
        opt = L.optimizer.create_adam_optimizer_from_args(model, args)
        sched = L.optimizer.create_optimizer_scheduler(opt, args)
        step = 0
        for epoch in itertools.count(start=1):  # gpt2_ft.py's __main__ loop
            step = L.gpt2_ft.train_validate(model, opt, sched, loader, None, args, train_step=step, epoch=epoch)
            if step >= args.max_step:
                break
    round_bf16(model)
    sha = save_weights(model, Path(a.out), {"seed": str(a.seed), "steps": str(a.steps)})
    print(f"{a.out}: sha256 {sha}")


# ---------------------------------------------------------------------------------------- beam
def make_beam(L: Namespace, a: argparse.Namespace) -> None:
    out, lora_dir = Path(a.out), Path(a.lora_dir)
    out.mkdir(parents=True, exist_ok=True)
    one_process_group()
    model = load_golden(L, Path(a.weights))
    if a.eos628_seed is not None:
        replace_628_row(model, a.eos628_seed)
    if a.eos628_seed is not None:
        meta = {"derived_from": a.derived_from, "eos628_seed": str(a.eos628_seed)}
        sha = save_weights(model, out / "weights.safetensors", meta)
    else:
        sha = copy_weights(Path(a.weights), out / "weights.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fmt, enc = formatted_and_encoded(lora_dir, a.split, work)
        contexts = list(dict.fromkeys(f["context"] for f in fmt))
        wanted = [contexts[i] for i in span(a.mrs)]
        lines = [i for i, f in enumerate(fmt) if f["context"] in set(wanted)]
        decode_input = [fmt[i] for i in lines]
        first = [lines.index(next(i for i in lines if fmt[i]["context"] == c)) for c in wanted]
        rows = run_beam(L, model, [enc[lines[j]] for j in first], a, work)
        items = beam_items(wanted, decode_input, [enc[lines[j]] for j in first], rows)
        dump(out / "expected_beam.json", {"settings": {"split": a.split, "mrs": a.mrs, "lp": a.lp, "seq_len": 512,
                                                       "eval_len": a.eval_len}, "items": items})
        dump(out / "decode_input_lines.json", decode_input)
        samples = write_jsonl(work / "predict.jsonl", [{"id": j, "predict": r} for j, r in zip(first, rows)])
        run_script(lora_dir, "gpt2_decode.py", "--vocab", str(lora_dir / "examples" / "NLG" / "vocab"),
                   "--sample_file", str(samples), "--input_file", str(write_jsonl(work / "in.jsonl", decode_input)),
                   "--output_ref_file", str(out / "expected_ref.txt"),
                   "--output_pred_file", str(out / "expected_pred.txt"), "--ref_type", "e2e")
    write_beam_readme(out, a, sha, items)
    print(f"{out}: sha256 {sha}")


def load_metadata(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


def replace_628_row(model, seed: int) -> None:
    """beam_eos628 recipe: the embedding row of 628 ("\\n\\n") := row of 50256 + 0.01 N(0, 1) (Generator seed), bf16."""
    wte = model.transformer.wte.weight
    noise = torch.randn(wte.shape[1], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        wte[NEWLINES] = wte[EOS] + 0.01 * noise
    round_bf16(model)


def run_beam(L: Namespace, model, enc_rows: list[dict], a: argparse.Namespace, work: Path) -> list[list[int]]:
    """gpt2_beam.beam() unmodified: batch 1, FT_Dataset(seq_len 512, eval_len), module-level args set."""
    data = L.data_utils.FT_Dataset(str(write_jsonl(work / "beam_in.jsonl", enc_rows)), 1, 512, a.eval_len)
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=0, shuffle=False, drop_last=False,
                                         sampler=torch.utils.data.distributed.DistributedSampler(data))
    args = Namespace(device="cpu", beam=10, length_penalty=a.lp, no_repeat_ngram_size=4, repetition_penalty=1.0,
                     eos_token_id=[EOS, NEWLINES], eval_len=a.eval_len, min_length=0, batch_size=1, seq_len=512,
                     rank=0, world_size=1, work_dir=str(work), output_file="beam_prediction.jsonl",
                     platform="local", dist=torch.distributed)
    L.gpt2_beam.args = args  # _add_beam_candidate reads the module-level args
    L.gpt2_beam.beam(model, loader, args)
    preds = {}
    for line in (work / "beam_prediction.jsonl").read_text().splitlines():
        row = json.loads(line)
        preds[row["id"]] = row["predict"]
    return [preds[i] for i in range(len(enc_rows))]


def beam_items(contexts: list[str], decode_input: list[dict], enc_rows: list[dict], rows: list[list[int]]) -> list:
    items = []
    for context, enc, row in zip(contexts, enc_rows, rows):
        cut = next((i for i, t in enumerate(row) if t in (EOS, NEWLINES)), None)
        generated = row if cut is None else row[:cut + 1]
        ends = "maxlen" if cut is None else f"eos{row[cut]}"
        items.append({"context": context, "query_ids": enc["context"],
                      "references_lora_tokenized": [d["completion"] for d in decode_input if d["context"] == context],
                      "beam_best_sequence": row, "generated_ids": generated, "ends_with": ends})
    return items


# -------------------------------------------------------------------------------------- READMEs
HEAD = ("Tiny GPT-2 + LoRA (r 4, alpha 32, q and v) as described in ../shared/golden/lora_nlg/README.md\n"
        "and tests/golden/README.md (no README in lora_nlg_extra/ itself, so that `check lora_nlg_extra/*` sees only "
        "cases).\n")


def trained_weights_text(meta: dict[str, str]) -> str:
    """The beam cases' training recipe (what `train` does), as the shared beam READMEs word it."""
    return (
        "The base weights come from training LoRA's `GPT2LMModel` (tiny shape above, lora_dropout 0) from random\n"
        "initialisation so that it writes E2E-like text ending in <|endoftext|>: "
        f"`torch.manual_seed({meta['seed']})` before building the\n"
        "model, every `lora_B` then set to N(0, 0.02) draws (instead of loralib's zeros), all parameters trainable "
        "that LoRA's\nmodel leaves trainable: everything but `c_attn.weight`, which `loralib.MergedLinear` freezes (so "
        "the base is trained\nexcept the fused q/k/v projection, which stays at its init; no `mark_only_lora_as_"
        "trainable`), "
        f"{meta['steps']} steps of LoRA's `gpt2_ft.train_validate` + `optimizer_step`\n"
        "on LoRA's `examples/NLG/data/e2e/valid.txt` (E2E dev set) after `format_converting_e2e.py` and\n"
        "`gpt2_encode.py --add_bos --add_eos`, `FT_Dataset` seq_len 128, batch 8, DataLoader with a\n"
        "`DistributedSampler(num_replicas 1, rank 0, seed 110)` (torch.manual_seed(110) and random.seed(110) "
        "before the\ndata set was built), LoRA's AdamW lr 5e-3, weight_decay 0.01, betas (0.9, 0.999), eps 1e-6, "
        "correct_bias, linear\nschedule warmup_step 30, max_step "
        f"{meta['steps']}, label_smooth 0.1, no clipping. Every parameter was then rounded to bfloat16\n"
        f"(`scripts/make_lora_reference_cases.py train --seed {meta['seed']} --steps {meta['steps']}`).\n")


def init_weights_text(seed: int) -> str:
    return (
        "LoRA's `GPT2Config` (n_embd 32, n_layer 2, n_head 4, vocab 50257, lora_attn_dim 4, lora_attn_alpha 32,\n"
        f"lora_dropout 0) and `GPT2LMModel` (examples/NLG/src/model.py) were built right after `torch.manual_seed({seed})`"
        "\n(so embeddings and Linear/Conv1D weights are LoRA's own N(0, 0.02) init and lora_A loralib's "
        "kaiming-uniform init).\nThen, walking `named_parameters()` in order: every `lora_B` was filled with "
        "N(0, 0.05) draws, every bias with N(0, 0.02), every LayerNorm weight with\n1 + 0.1 N(0, 1). Finally every "
        "parameter was rounded to bfloat16 (stored values are exact).\n")


def lora_effect(L: Namespace, weights: Path, batch: list[dict]) -> float:
    """Max |logit change| when every lora_B is zeroed: how much the LoRA path matters in this case."""
    model = load_golden(L, weights).eval()
    with tempfile.TemporaryDirectory() as tmp:
        b = dataset_batch(L, batch, 512, Path(tmp))
    with torch.no_grad():
        full, _ = model(b["input"])
        for n, p in model.named_parameters():
            if n.endswith("lora_B"):
                p.zero_()
        base, _ = model(b["input"])
    n = max(len(e["context"]) + len(e["completion"]) for e in batch)
    return float((full - base)[:, :n].abs().max())


def write_fwd_readme(L: Namespace, out: Path, a, sha: str, batch: list[dict], run: dict) -> None:
    loss = json.loads((out / "expected_loss.json").read_text())
    moved = max((v - load_file(str(out / "weights.safetensors"))[k.split("/", 1)[1]].float()).abs().max().item()
                for k, v in load_file(str(out / "expected_lora_params_after_steps.safetensors")).items()
                if k.startswith("step6/"))
    lengths = [len(e["context"]) + len(e["completion"]) for e in batch]
    meta = load_metadata(out / "weights.safetensors")
    weights = trained_weights_text(meta) if a.weights else init_weights_text(a.seed)
    first, last = span(a.rows)[0], span(a.rows)[-1]
    o_first, o_last = run["optimizer_rows_0based"][0], run["optimizer_rows_0based"][-1]
    text = f"""# {out.name}: forward, loss, LoRA gradients and 6 optimizer steps of microsoft/LoRA's GPT-2 code

{HEAD}`weights.safetensors` sha256 `{sha}`.

## How the weights were made

{weights}The LoRA path matters: zeroing every B changes this batch's logits by up to {lora_effect(L, out / "weights.safetensors", batch):.2g}.

## The batch (`batch.json`)

Lines {first}-{last} (0-based) of LoRA's `examples/NLG/data/e2e/{a.split}.txt`, passed through LoRA's
`format_converting_e2e.py` (split on `||`) and `gpt2_encode.py --add_bos --add_eos` with LoRA's `examples/NLG/vocab`
(context ids + [50256], then the ids of `' ' + completion` + [50256]). `batch.json` gives the text
(`context_text`, `completion_text`, exactly as in the file: word-tokenized references), the ids,
`input_ids_unpadded` (= context + completion) and `loss_mask_on_input_ids` (1 on completion tokens, incl. the final
50256). LoRA's `FT_Dataset` (data_utils.py) with seq_len 512 right-pads with id 0 and gives
target[t] = input[t+1] with weight mask[t] = loss_mask_on_input_ids[t+1]: {loss['loss_tokens']} weighted tokens.
`row_lengths` are the unpadded lengths (longest {max(lengths)}).

## Expected values

* `expected_loss.json`: LoRA's `GPT2LMModel.forward(input, lm_labels=target, lm_mask=mask, label_smooth=...)`
  on that batch: label_smooth 0.1 -> {loss['loss_label_smooth_0.1']!r}; label_smooth 0 -> {loss['loss_label_smooth_0.0']!r}
  (per-token (1-eps) NLL + eps * mean over the vocabulary of -log p, times the mask, summed over the batch and
  divided by mask.sum() + 1e-4).
* `expected_logits_summary.safetensors` (float32, shape (8, {max(lengths)}) unless noted; position t = input position t):
  `lse` logsumexp over the vocabulary, `max`, `argmax` (int64), `eos_50256` (logit of id 50256),
  `vocab_0_255` (8, {max(lengths)}, 256) the logits of ids 0-255, `valid` (uint8) 1 where t < row length; positions with
  `valid` 0 are LoRA's values on its zero padding and must be ignored.
* `expected_lora_grads.safetensors`: float32 gradients of the eight LoRA tensors (golden names) after
  `backward()` of the label_smooth 0.1 loss above (the merged loralib gradients split as ../shared/golden/lora_nlg/README.md describes).
* `expected_lora_params_after_steps.safetensors`: keys `step{{k}}/<golden name>`, k = 1..6: the LoRA tensors after
  k optimizer steps of LoRA's code, starting from `weights.safetensors`: `loralib.mark_only_lora_as_trainable`
  (only the LoRA A/B train), `optimizer.create_adam_optimizer_from_args` (LoRA's AdamW: lr 2e-4, betas (0.9, 0.999),
  eps 1e-6, weight_decay 0.01, correct_bias true, one parameter group), `optimizer.create_optimizer_scheduler` with
  scheduler linear, warmup_step 2, max_step 6, and `gpt2_ft.optimizer_step` (clip 0, grad_acc 1, fp32) after each
  forward with label_smooth 0.1. Step k uses rows [8(k-1), 8k) of `optimizer_run.json`'s
  `optimizer_rows_0based` (lines {o_first}-{o_last} of the same file), in order, no shuffling, `FT_Dataset` seq_len 128.
  The learning rate in force at steps 1-6 is {run['lr_used_at_each_step']} (the first step runs with lr 0: the
  schedule starts at warm-up factor 0 and is advanced after each optimizer step); the loss before each update is in
  `optimizer_run.json`.

Float32 on CPU, one thread (the parameters move by up to {moved:.2g} over the six steps).

Made with `{command_line(a)}`.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def write_beam_readme(out: Path, a, sha: str, items: list[dict]) -> None:
    ends = {k: sum(it["ends_with"] == k for it in items) for k in ("eos50256", "eos628", "maxlen")}
    meta = load_metadata(Path(a.weights)) or {}
    weights = trained_weights_text(meta) if "seed" in meta else f"As the weights of `{a.weights}` (its README).\n"
    if a.eos628_seed is not None:
        weights += ("Then the token-embedding row of id 628 (\"\\n\\n\"; tied, so also its output row) was replaced by "
                    "the row of id 50256 plus 0.01 N(0, 1) draws from "
                    f"`torch.Generator().manual_seed({a.eos628_seed})`, and rounded to bfloat16 again.\n")
    else:
        weights += "No further change.\n"
    a0, a1 = span(a.mrs)[0], span(a.mrs)[-1]
    split = {"test": "E2E test set with references", "valid": "E2E dev set"}[a.split]
    ends_text = ", ".join(f"{n} {label}" for label, n in
                          (("end with 50256", ends["eos50256"]), ("end with 628", ends["eos628"]),
                           (f"have no EOS within eval_len {a.eval_len}", ends["maxlen"])))
    text = f"""# {out.name}: microsoft/LoRA's beam search (gpt2_beam.py) and text post-processing (gpt2_decode.py)

{HEAD}`weights.safetensors` sha256 `{sha}`.

## Weights

{weights}
## Decoding

LoRA's `gpt2_beam.beam()` (examples/NLG/src/gpt2_beam.py), unmodified, with the arguments of the README's step 2
except the model{"" if a.lp == 0.9 else " and the length penalty (README: 0.9)"}: beam 10, length_penalty {a.lp}, no_repeat_ngram_size 4, repetition_penalty 1.0,
eos_token_id [50256, 628] (argparse default [50256] plus the README's `--eos_token_id 628`), eval_len {a.eval_len},
min_length 0, batch_size 1, `FT_Dataset(seq_len 512, eval_len {a.eval_len})` queries (context ids + 50256, right-padded
to 512). It ran on CPU in float32 inside a one-process gloo group (world size 1), with its module-level `args` set
to these values. MRs: unique MRs {a0}-{a1} ({len(items)} MRs) of LoRA's `examples/NLG/data/e2e/{a.split}.txt` ({split},
one line per reference), in order of first appearance; each MR was decoded once, from its first line (the script
decodes every line, and with batch size 1 the lines of one MR decode identically). Ends: {ends_text}.

## Files

* `expected_beam.json`: `settings`, and `items` in MR order: `context` (the MR string LoRA's model reads),
  `query_ids` (its ids + 50256), `references_lora_tokenized` (that MR's completions from {a.split}.txt, file order),
  `beam_best_sequence` (LoRA's `best_sequence` row as written to its prediction file: eval_len ids, the hypothesis
  followed by zeros), `generated_ids` (that row up to and including its first EOS id 50256 or 628; all eval_len ids
  when the best hypothesis has no EOS), `ends_with` (`eos50256`, `eos628` or `maxlen`).
* `decode_input_lines.json`: the {a.split}.txt lines (as `{{"context", "completion"}}` objects, file order) of these MRs,
  i.e. the `--input_file` given to gpt2_decode.py.
* `expected_pred.txt`, `expected_ref.txt`: what LoRA's `gpt2_decode.py --ref_type e2e` (no --tokenize, no --lower)
  writes from those lines and the beam predictions: one hypothesis per MR
  (`decode(ids).split('<|endoftext|>')[0].split('\\n\\n')[0].strip()`), and the references grouped per MR (keyed by
  the context string, first-appearance order), one per line, each group followed by one blank line.
  {len(items)} hypotheses, {len(items)} groups.

Made with `{command_line(a)}`.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def relative(value):
    """Paths under the current folder (the repository) as relative paths."""
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).resolve().is_relative_to(Path.cwd()):
        return str(Path(value).resolve().relative_to(Path.cwd()))
    return value


def command_line(a) -> str:
    skip = {"lora_dir", "kind"} | ({"derived_from"} if getattr(a, "eos628_seed", None) is None else set())
    flags = " ".join(f"--{k.replace('_', '-')} {relative(v)}" for k, v in vars(a).items()
                     if k not in skip and v is not None)
    return f"python scripts/make_lora_reference_cases.py --lora-dir <LoRA checkout> {a.kind} {flags}"


# ------------------------------------------------------------------------------------------ CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lora-dir", required=True, help=f"microsoft/LoRA checkout at {LORA_COMMIT}")
    sub = p.add_subparsers(dest="kind", required=True)
    fwd = sub.add_parser("fwd", help="forward/loss/gradients/6 optimizer steps case")
    fwd.add_argument("--seed", type=int, help="the init recipe's seed (without --weights)")
    fwd.add_argument("--weights", help="start from this golden weights file instead of the init recipe")
    fwd.add_argument("--split", default="valid", choices=["valid", "test"])
    fwd.add_argument("--rows", required=True, help="8 lines, A..B (0-based, inclusive)")
    fwd.add_argument("--opt-rows", required=True, help="48 lines, A..B")
    fwd.add_argument("--out", required=True)
    train = sub.add_parser("train", help="train the beam cases' weights with gpt2_ft")
    train.add_argument("--seed", type=int, required=True)
    train.add_argument("--steps", type=int, default=600)
    train.add_argument("--out", required=True)
    beam = sub.add_parser("beam", help="beam search + gpt2_decode case")
    beam.add_argument("--weights", required=True)
    beam.add_argument("--split", default="test", choices=["valid", "test"])
    beam.add_argument("--mrs", required=True, help="unique MRs A..B (0-based, first-appearance order)")
    beam.add_argument("--lp", type=float, required=True)
    beam.add_argument("--eval-len", type=int, default=64)
    beam.add_argument("--eos628-seed", type=int, default=None, help="replace the 628 row (beam_eos628 recipe)")
    beam.add_argument("--derived-from", default="beam_trained", help="metadata of an eos628 weights file")
    beam.add_argument("--out", required=True)
    return p


def main() -> None:
    a = parser().parse_args()
    torch.set_num_threads(1)
    L = lora_modules(Path(a.lora_dir).resolve())
    {"fwd": make_fwd, "train": make_train, "beam": make_beam}[a.kind](L, a)


if __name__ == "__main__":
    main()
