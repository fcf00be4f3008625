"""The LoRA authors' own checkpoints (loralib format, microsoft/LoRA) loaded into lodabench's LoRA.

microsoft/LoRA publishes GPT-2 M/L checkpoints for E2E, DART and WebNLG (``gpt2_md_lora_e2e.pt``, ...)
and RoBERTa/DeBERTa GLUE checkpoints (``roberta_base_lora_mnli.bin``, ...). Evaluating them through
our decoding and scoring separates "we trained differently" from "we evaluate differently" (#29).

What the files hold, as microsoft/LoRA writes them (read at commit c4593f0; none of its code is copied):

- GPT-2 (examples/NLG/src/model.py, gpt2_ft.py): ``torch.save({'model_state_dict': ...})`` of either
  ``lora.lora_state_dict(model)`` (the interval checkpoints and the released ``.pt`` files, 1.5 MB for
  GPT-2 M) or the whole ``model.state_dict()`` (the last step); under DDP the keys start with
  ``module.``. ``transformer.h.<i>.attn.c_attn`` is ``lora.MergedLinear(enable_lora=[True, False,
  True], fan_in_fan_out=True)``: ``lora_A`` (2r, d) stacks A_q over A_v, ``lora_B`` (2d, r) stacks
  B_q over B_v, and loralib multiplies them with a conv1d of ``groups=2``, so group g's rows of B
  meet only group g's rows of A: delta_q = B[:d] A[:r], delta_v = B[d:] A[r:]; the k columns get
  none. ``fan_in_fan_out`` only transposes the stored (in, 3d) weight, as HF's Conv1D stores it, so
  the factors need no transpose: they map 1:1 onto our per-slice adapters ``c_attn.adapters.{q,v}``.
- RoBERTa (examples/NLU, its modified modeling_roberta.py): a plain ``state_dict`` with
  ``roberta.encoder.layer.<i>.attention.self.{query,value}.lora_A`` (r, d) / ``lora_B`` (d, r), one
  ``lora.Linear`` each, plus the classification head ``classifier.{dense,out_proj}.{weight,bias}``
  (HF's names), which is loaded too.

Neither file records alpha: the caller gives it (the README's commands: GPT-2 ``--lora_alpha 32``
with r=4; RoBERTa-base/large scripts ``--lora_alpha 16`` with r=8). r is read from the shapes.
Keys that are neither LoRA factors nor the head (the frozen base weights of a whole-model save) are
not loaded: the HF model already holds the base weights; they are listed as ``ignored``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lodabench.errors import CheckpointError
from lodabench.methods import method_of
from lodabench.methods.targets import is_head

PREFIX = "loralib:"  # init_from=loralib:PATH
_GPT2_FUSED = re.compile(r"^(transformer\.h\.\d+\.attn\.c_attn)\.(lora_A|lora_B)$")
_SEPARATE = re.compile(r"^(.+\.attention\.self\.(query|key|value))\.(lora_A|lora_B)$")
_SLOT = {"query": "q", "key": "k", "value": "v"}
_FIX_FILE = "Fix: point to a checkpoint saved by microsoft/LoRA (a released .pt/.bin file or a gpt2_ft.py model.<step>.pt)"


@dataclass
class Layout:
    """A loralib checkpoint translated to our parameter names: tensors, rank, targets, what was left."""

    path: Path
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # our name -> tensor (factors + head)
    targets: set[str] = field(default_factory=set)
    ranks: set[int] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The file's tensors: ``model_state_dict`` unwrapped, the DDP ``module.`` prefix removed."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"loralib checkpoint {p} does not exist. {_FIX_FILE}")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors alike for a bad file
        raise CheckpointError(f"{p}: not a readable torch checkpoint ({type(exc).__name__}: {exc}). {_FIX_FILE}") from exc
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p}: unknown layout (expected a state dict of tensors, or "
                              f"{{'model_state_dict': state dict}}; got {type(obj).__name__}). {_FIX_FILE}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def translate(sd: dict[str, torch.Tensor], path: str | os.PathLike) -> Layout:
    """Map every loralib key onto our names (GPT-2 fused c_attn split into q and v)."""
    out = Layout(Path(path))
    for key in sorted(sd):
        if _GPT2_FUSED.match(key):
            _fused(out, key, sd)
        elif m := _SEPARATE.match(key):
            _separate(out, key, m, sd[key])
        elif is_head(key):
            out.tensors[key] = sd[key]
        elif "lora_" in key:
            raise CheckpointError(f"{out.path}: key {key!r} is a LoRA factor on a module lodabench's import does "
                                  "not know (it reads GPT-2 transformer.h.<i>.attn.c_attn and RoBERTa/BERT "
                                  "attention.self.query/key/value). Fix: use a GPT-2 or RoBERTa checkpoint of "
                                  "microsoft/LoRA, or convert the file to those names")
        else:
            out.ignored.append(key)
    if not out.targets:
        raise CheckpointError(f"{out.path}: unknown layout, no LoRA factor (lora_A/lora_B) among its "
                              f"{len(sd)} keys (e.g. {sorted(sd)[:3]}). {_FIX_FILE}")
    if len(out.ranks) != 1:
        raise CheckpointError(f"{out.path}: LoRA factors of several ranks {sorted(out.ranks)}; lodabench's lora "
                              "has one r. Fix: use a checkpoint trained with one lora_dim/lora_r")
    return out


def _fused(out: Layout, key: str, sd: dict[str, torch.Tensor]) -> None:
    """One MergedLinear(enable_lora=[True, False, True]) factor -> our q and v factors."""
    holder, which = _GPT2_FUSED.match(key).groups()
    a, b = sd.get(f"{holder}.lora_A"), sd.get(f"{holder}.lora_B")
    if a is None or b is None:
        missing = f"{holder}.lora_B" if a is not None else f"{holder}.lora_A"
        raise CheckpointError(f"{out.path}: missing key {missing!r} (its partner {key!r} is there). {_FIX_FILE}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] % 2 or b.shape[0] % 2 or b.shape[1] * 2 != a.shape[0]:
        raise CheckpointError(f"{out.path}: {holder}.lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} is not "
                              "loralib's MergedLinear q/v layout (lora_A (2r, d), lora_B (2d, r), "
                              "enable_lora=[True, False, True]). Fix: use a microsoft/LoRA GPT-2 checkpoint")
    r, d = b.shape[1], b.shape[0] // 2
    t = a if which == "lora_A" else b
    half = r if which == "lora_A" else d
    out.tensors[f"{holder}.adapters.q.{which}"] = t[:half]
    out.tensors[f"{holder}.adapters.v.{which}"] = t[half:]
    out.targets |= {"q", "v"}
    out.ranks.add(r)


def _separate(out: Layout, key: str, m: re.Match, t: torch.Tensor) -> None:
    holder, attr, which = m.groups()
    slot = _SLOT[attr]
    out.tensors[f"{holder}.adapters.{slot}.{which}"] = t
    out.targets.add(slot)
    out.ranks.add(t.shape[0] if which == "lora_A" else t.shape[-1])


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_layout(path: str | os.PathLike) -> Layout:
    return translate(read_state_dict(path), path)


@torch.no_grad()
def load_layout(model: nn.Module, layout: Layout, *, strict_head: bool = True) -> dict[str, Any]:
    """Copy the translated tensors into ``model`` (lora applied with the layout's r and targets).

    A factor whose shape differs, or one the model has and the file lacks, raises CheckpointError
    naming the file and key. A head tensor of another shape (another label count) raises too when
    ``strict_head``; otherwise it is dropped and reported, as our warm start does (LoRA Sec. 5.1).
    """
    _check_method(model, layout)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    dropped: dict[str, str] = {}
    for name, t in layout.tensors.items():
        target = params.get(name)
        if target is not None and tuple(target.shape) == tuple(t.shape):
            continue
        shapes = f"checkpoint {tuple(t.shape)} vs model {tuple(target.shape) if target is not None else 'absent'}"
        if is_head(name) and not strict_head:
            dropped[name] = shapes
            continue
        raise CheckpointError(f"{layout.path}: key {_their_key(name)!r} does not fit the model ({shapes}). Fix: "
                              f"{_fix_for(name)}")
    missing = [n for n in params if not is_head(n) and n not in layout.tensors]
    if missing:
        raise CheckpointError(f"{layout.path}: missing key {_their_key(missing[0])!r} ({len(missing)} of the model's "
                              "LoRA factors are not in the file). Fix: use the base model the checkpoint was "
                              "trained on (same number of layers), e.g. gpt2-medium for gpt2_md_*.pt")
    carried = sorted(n for n in layout.tensors if n not in dropped)
    for name in carried:
        params[name].copy_(layout.tensors[name].to(device=params[name].device, dtype=params[name].dtype))
    return {"carried": carried, "dropped": dict(sorted(dropped.items())),
            "fresh": sorted(n for n in params if n not in set(carried)), "ignored": layout.ignored}


def _check_method(model: nn.Module, layout: Layout) -> None:
    info = method_of(model)
    cfg = (info or {}).get("config", {})
    (r,) = layout.ranks
    if info is None or info["name"] != "lora":
        raise CheckpointError(f"{layout.path}: a loralib checkpoint loads into method=lora, the model has "
                              f"{info['name'] if info else 'no method'}. Fix: method=lora method.r={r}")
    if cfg.get("r") != r or set(cfg.get("targets", ())) != layout.targets:
        raise CheckpointError(f"{layout.path}: holds r={r} on {sorted(layout.targets)}, the model's lora has "
                              f"method.r={cfg.get('r')} method.targets={list(cfg.get('targets', ()))}. Fix: "
                              f"method.r={r} method.targets=[{','.join(sorted(layout.targets))}]")


def _their_key(name: str) -> str:
    """Our parameter name back to the file's key (for messages)."""
    if ".adapters." not in name:
        return name
    holder, rest = name.split(".adapters.")
    return f"{holder}.{rest.split('.', 1)[1]}"


def _fix_for(name: str) -> str:
    if is_head(name):
        return "build the model with the checkpoint's label count (data= the task it was trained on)"
    return "use the base model the checkpoint was trained on (gpt2-medium for gpt2_md_*, gpt2-large for gpt2_lg_*, roberta-base for roberta_base_*)"


def import_loralib(model: nn.Module, path: str | os.PathLike, alpha: float, **options: Any) -> nn.Module:
    """Apply lodabench's lora (r and targets read from the file) to a plain HF ``model`` and load
    ``path`` into it exactly; returns the model. ``options``: further ``method.*`` keys (dropout)."""
    from lodabench.methods import apply_method

    layout = read_layout(path)
    (r,) = layout.ranks
    was_training = model.training
    opts = {"dropout": 0.0, **options, "name": "lora", "r": r, "alpha": alpha, "targets": sorted(layout.targets)}
    model = apply_method(model, opts).train(was_training)
    load_layout(model, layout, strict_head=True)
    return model


def load_init_from(model: nn.Module, location: str) -> dict[str, Any]:
    """``init_from=loralib:PATH``: load into the run's lora model; the record's ``warm_start`` block
    says what was loaded (source, path, sha256, r, alpha, targets, carried/dropped/ignored)."""
    path = Path(location[len(PREFIX):])
    layout = read_layout(path)
    report = load_layout(model, layout, strict_head=False)
    cfg = method_of(model)["config"]
    return {"source": "loralib", "path": str(path), "sha256": sha256_of(path), "method": "lora",
            "r": cfg["r"], "alpha": cfg["alpha"], "targets": sorted(layout.targets), **report}
