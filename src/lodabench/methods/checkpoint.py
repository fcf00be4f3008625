"""Trainable-only checkpoints (safetensors + metadata) and export in PEFT's adapter format.

``save_trainable(model, path)`` writes only the tensors that train (for LoRA on GPT-2 medium:
393,216 numbers, not 355M) with the method name and its full config in the safetensors
metadata. ``load_trainable(model, path)`` loads them into a freshly built base model to which
the same method was applied; a checkpoint of another method or rank fails with a
CheckpointError that says what the file holds and what the model expects. Loading compares the
configs (all keys except ``dropout`` and ``train_head``, which do not change the tensors or
the function at inference) before touching any weight.

``export_peft(model, out_dir)`` writes ``adapter_config.json`` + ``adapter_model.safetensors``
as ``peft.PeftModel.from_pretrained`` expects them, for lora and dora: 1:1 on Linear targets
(BERT/RoBERTa/LLaMA); on GPT-2's fused c_attn as one block-structured PEFT LoRA of rank
r * len(targets) whose delta equals ours exactly (see ``_gpt2_fused_export``). Trainable head
modules are exported as ``modules_to_save``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from lodabench.errors import CheckpointError, ConfigError
from lodabench.io import atomic_write_json, atomic_write_with
from lodabench.methods import (
    HEAD_NAMES,
    describe_state_dict,
    load_trainable_state_dict,
    method_of,
    trainable_state_dict,
)

META_METHOD = "lodabench.method"
META_CONFIG = "lodabench.config"
# The one safetensors metadata key a checkpoint is written with: a sorted JSON object of the keys
# above (+ extra_metadata). safetensors serialises its metadata map in Rust HashMap order, which
# is random per map, so two keys give files whose bytes differ run to run (issue #17); one key
# makes equal weights give equal files. read_metadata() unpacks it (and reads the older two-key files).
META_PACKED = "lodabench.metadata"
# Keys whose value does not change the stored tensors nor the inference-time function.
_IGNORED_ON_LOAD = ("dropout", "train_head")


def _cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def save_trainable(model: nn.Module, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> Path:
    info = method_of(model)
    if info is None:
        raise CheckpointError(f"save_trainable({path}): the model has no method applied (call apply_method first)")
    metadata = {META_METHOD: info["name"], META_CONFIG: json.dumps(info["config"], sort_keys=True)}
    metadata.update(extra_metadata or {})
    packed = {META_PACKED: json.dumps(metadata, sort_keys=True)}
    sd = _cpu(trainable_state_dict(model))
    atomic_write_with(path, lambda tmp: save_file(sd, str(tmp), metadata=packed))
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        return {**meta, **json.loads(meta.pop(META_PACKED))} if META_PACKED in meta else meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc}). Fix: point to a "
                              "complete checkpoint file written by lodabench (it may be truncated)") from exc


def load_trainable(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a save_trainable() file into ``model`` (same method applied). Returns the metadata."""
    meta = read_metadata(path)
    info = method_of(model)
    if info is None:
        raise CheckpointError(f"{path}: the model has no method applied; apply method={meta.get(META_METHOD)} first")
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors ({exc}); the file may be truncated") from exc
    _check_same_method(path, meta, sd, info)
    _refuse_nonfinite(sd, path)
    try:
        load_trainable_state_dict(model, sd)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    return meta


def _check_same_method(path, meta: dict[str, str], sd: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Refuse a checkpoint of another method, or of the same method with another config."""
    saved_name = meta.get(META_METHOD)
    saved_cfg = json.loads(meta.get(META_CONFIG, "{}"))
    if saved_name is not None and saved_name != info["name"]:
        raise CheckpointError(
            f"{path} was saved by method={saved_name} ({_short(saved_cfg)}; tensors look like "
            f"{describe_state_dict(sd)}) but the model has method={info['name']} ({_short(info['config'])}). "
            f"Fix: build the model with method={saved_name} and the same config, or pick the right checkpoint"
        )
    diff = {
        k: (saved_cfg.get(k), info["config"].get(k))
        for k in set(saved_cfg) | set(info["config"])
        if k not in _IGNORED_ON_LOAD and saved_cfg.get(k) != info["config"].get(k)
    }
    if saved_name is not None and diff:
        desc = ", ".join(f"method.{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in sorted(diff.items()))
        raise CheckpointError(f"{path}: method={saved_name} config differs from the model's: {desc}. "
                              "Fix: apply the method with the checkpoint's config before loading")


# ----------------------------------------------------------------------------- warm start

def resolve_warm_start(location: str | os.PathLike) -> Path:
    """The trainable.safetensors a warm start reads: the file itself, or for a run directory the
    checkpoint its reported numbers came from (``record.json`` ``checkpoint_used``: the best-dev
    epoch, else the last step). A run that is not complete is refused: its weights are not final."""
    path = Path(location)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"init_from={str(location)!r} does not exist. Fix: point it to a finished run "
                              "directory or to a trainable.safetensors file")
    record_path = path / "record.json"
    if not record_path.is_file():
        if (path / "trainable.safetensors").is_file():
            return path / "trainable.safetensors"
        raise CheckpointError(f"init_from={str(location)!r}: no record.json nor trainable.safetensors in it. "
                              "Fix: point it to a run directory (results/runs/.../seed<N>) or a checkpoint file")
    from lodabench.state_files import read_latest, read_state
    record = read_state(record_path, "record")  # shape checked: DataError naming the field, not a traceback
    if record.get("status") != "complete":
        raise CheckpointError(f"init_from={str(location)!r}: that run is {record.get('status')!r}, not complete. "
                              "Fix: finish it first (re-run its command), or point to a checkpoint file on purpose")
    used = str(record.get("checkpoint_used") or "")
    ckpt_dir = path / "checkpoints"
    if used.startswith("best_dev (epoch "):
        epoch = used[len("best_dev (epoch "):].split(",")[0].split(")")[0]
        chosen = ckpt_dir / f"epoch-{epoch}" / "trainable.safetensors"
    else:
        latest = ckpt_dir / "latest.json"
        if not latest.is_file():
            raise CheckpointError(f"init_from={str(location)!r}: {latest} is missing; the run kept no checkpoint")
        chosen = ckpt_dir / read_latest(ckpt_dir)["dir"] / "trainable.safetensors"
    if not chosen.is_file():
        raise CheckpointError(f"init_from={str(location)!r}: {chosen} (checkpoint_used: {used!r}) is missing")
    return chosen


@torch.no_grad()
def load_warm_start(model: nn.Module, location: str | os.PathLike) -> dict[str, Any]:
    """Initialise ``model`` (method applied) from another task's run of the same method and config.

    LoRA (Sec. 5.1, Table 9) starts MRPC, RTE and STS-B from the MNLI-adapted model: the adapters
    (and any head layer of the same shape, e.g. RoBERTa's ``classifier.dense``) are carried; the
    output layer, whose shape follows the label count (MNLI 3, MRPC 2, STS-B 1), cannot be and is
    dropped (it keeps its fresh initialisation). LoRA's run_glue.py loads the MNLI file with
    ``load_state_dict(..., strict=False)``. Only head tensors may be dropped or absent: any other
    mismatch means another method/config and raises CheckpointError, as does another method or rank.

    ``init_from=loralib:PATH`` reads a microsoft/LoRA checkpoint instead (methods/loralib_import.py).

    Returns ``{"path", "method", "carried": [names], "dropped": {name: "checkpoint (..) vs model (..)"},
    "fresh": [trainable tensors left at their initialisation: dropped or absent]}`` for the run record.
    """
    from lodabench.methods import _is_head
    from lodabench.methods import loralib_import

    if str(location).startswith(loralib_import.PREFIX):  # the LoRA authors' own files (loralib_import.py)
        return loralib_import.load_init_from(model, str(location))
    path = resolve_warm_start(location)
    info = method_of(model)
    if info is None:
        raise CheckpointError(f"warm start from {path}: the model has no method applied (call apply_method first)")
    meta = read_metadata(path)
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors ({exc}); the file may be truncated") from exc
    _check_same_method(path, meta, sd, info)
    _refuse_nonfinite(sd, path)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    carried: list[str] = []
    dropped: dict[str, str] = {}
    bad: list[str] = []
    for name, tensor in sd.items():
        target = params.get(name)
        if target is not None and tuple(target.shape) == tuple(tensor.shape):
            carried.append(name)
        elif _is_head(name):
            dropped[name] = (f"checkpoint {tuple(tensor.shape)} vs model "
                             f"{tuple(target.shape) if target is not None else 'absent'}")
        else:
            bad.append(name if target is None else f"{name} {tuple(tensor.shape)} vs {tuple(target.shape)}")
    bad += [n for n in params if n not in sd and not _is_head(n)]
    fresh = [n for n in params if n not in set(carried)]
    if bad:
        raise CheckpointError(
            f"warm start from {path}: {len(bad)} non-head tensor(s) do not fit the model (e.g. {bad[0]}). "
            f"The checkpoint looks like {describe_state_dict(sd)}. Fix: use the same model and method config "
            "as the run it came from (only the classification head may differ)")
    for name in carried:
        params[name].copy_(sd[name].to(device=params[name].device, dtype=params[name].dtype))
    return {"path": str(path), "method": meta.get(META_METHOD), "carried": sorted(carried),
            "dropped": dict(sorted(dropped.items())), "fresh": sorted(fresh)}


def _refuse_nonfinite(sd: dict[str, torch.Tensor], path) -> None:
    """NaN/inf weights are never loaded: a resumed, warm-started or scored model would carry them."""
    from lodabench.state_files import refuse_nonfinite
    refuse_nonfinite(sd, f"checkpoint {path}", "Fix: use an earlier checkpoint, or delete the run's checkpoints/ "
                     "(or re-run with force=true) to train again from step 0; if training made them, lower "
                     "trainer.lr or set trainer.grad_clip.")


def _short(cfg: dict[str, Any]) -> str:
    keys = [k for k in ("r", "rank", "keep", "targets", "alpha") if k in cfg]
    return ", ".join(f"{k}={cfg[k]}" for k in keys) or "no rank"


# ----------------------------------------------------------------------------- PEFT export

_PEFT_TARGETS = {"bert": ("query", "key", "value"), "roberta": ("query", "key", "value"),
                 "llama": ("q_proj", "k_proj", "v_proj")}


def export_peft(model: nn.Module, out_dir: str | os.PathLike, base_model_name_or_path: str | None = None) -> Path:
    """Write a PEFT LoRA/DoRA adapter directory loadable by ``PeftModel.from_pretrained``."""
    from lodabench.methods import targets

    info = method_of(model)
    if info is None or info["name"] not in ("lora", "dora"):
        raise ConfigError(f"export_peft: only lora and dora export to PEFT's format, the model has "
                          f"{info['name'] if info else 'no method'}")
    fam = targets.family(model)
    cfg = info["config"]
    if fam == "gpt2":
        sd, r_peft, alpha_peft, target_modules = _gpt2_fused_export(model, cfg)
    else:
        attr_of = dict(zip("qkv", _PEFT_TARGETS[fam]))
        target_modules = sorted(attr_of[t] for t in cfg["targets"])
        r_peft, alpha_peft = cfg["r"], cfg["alpha"]
        sd = {}
        for name, p in model.named_parameters():
            if not p.requires_grad or ".adapters." in name:
                continue
            sd[f"base_model.model.{name}"] = p  # a trained head (modules_to_save)
        for name, p in model.named_parameters():
            if p.requires_grad and ".adapters." in name:
                holder, rest = name.split(".adapters.")
                _slot, pname = rest.split(".", 1)
                key = {"lora_A": "lora_A.weight", "lora_B": "lora_B.weight", "magnitude": "lora_magnitude_vector"}[pname]
                sd[f"base_model.model.{holder}.{key}"] = p
    heads = sorted({n.split(".")[0] for n in sd_names(model) if n.split(".")[0] in HEAD_NAMES})
    adapter_config = {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
        "r": r_peft,
        "lora_alpha": alpha_peft,
        "lora_dropout": cfg["dropout"],
        "target_modules": target_modules,
        "bias": "none",
        "fan_in_fan_out": fam == "gpt2",
        "use_dora": info["name"] == "dora",
        "use_rslora": False,
        "init_lora_weights": True,
        "modules_to_save": heads or None,
        "inference_mode": True,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = _cpu(sd)
    atomic_write_with(out / "adapter_model.safetensors", lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    atomic_write_json(out / "adapter_config.json", adapter_config)
    return out


@torch.no_grad()
def _gpt2_fused_export(model: nn.Module, cfg: dict[str, Any]):
    """Per-slice (q, v) adapters on GPT-2's fused c_attn as ONE PEFT LoRA of rank r * len(targets).

    A = [A_q; A_v] (stacked rows), B is block-structured (B_q in the q rows / first r columns,
    B_v in the v rows / next r columns, zeros elsewhere, so k gets no update) and lora_alpha is
    scaled by the same factor so alpha/r is unchanged: the exported delta equals ours exactly.
    DoRA: the k slice's magnitude is ||W0_k|| row-wise, so its scale m/||W0 + 0|| is 1.
    """
    from lodabench.methods.delta import AdaptedProjection

    r, n_slots = cfg["r"], len(cfg["targets"])
    sd: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if p.requires_grad and ".adapters." not in name:
            sd[f"base_model.model.{name}"] = p
    for name, mod in model.named_modules():
        if not isinstance(mod, AdaptedProjection):
            continue
        w = mod.base_layer.weight  # (in, 3d)
        d_in, out_total = w.shape
        a_rows, b = [], torch.zeros(out_total, r * n_slots, dtype=w.dtype, device=w.device)
        mag = torch.linalg.norm(w.t(), dim=1) if cfg["name"] == "dora" else None
        for j, slot in enumerate(sorted(mod.adapters, key=lambda n: mod.slices[n][0])):
            ad, (s, e) = mod.adapters[slot], mod.slices[slot]
            a_rows.append(ad.lora_A)
            b[s:e, j * r : (j + 1) * r] = ad.lora_B
            if mag is not None:
                mag[s:e] = ad.magnitude
        sd[f"base_model.model.{name}.lora_A.weight"] = torch.cat(a_rows, dim=0)
        sd[f"base_model.model.{name}.lora_B.weight"] = b
        if mag is not None:
            sd[f"base_model.model.{name}.lora_magnitude_vector"] = mag
    return sd, r * n_slots, float(cfg["alpha"]) * n_slots, ["c_attn"]


def sd_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]
