"""The method library for your own code: apply a method to any Hugging Face model, save/load it.

    import lodabench
    model = lodabench.apply_method(model, "loda", r=4, targets=["q", "v"])   # GPT-2, LLaMA, BERT, RoBERTa
    ...train with any torch optimizer / HF Trainer...
    lodabench.save_adapter(model, "out/")                 # trainable tensors + JSON config
    model = lodabench.load_adapter(fresh_base, "out/")    # same outputs as the trained model
    plain = lodabench.merge(model)                        # linear methods only (lora, dora, ...)

This is a thin layer over ``lodabench.methods`` (the same code ``python -m lodabench`` trains
with; a door, so it loads the plugins, issue #28): options are the ``method.*`` keys of ``method=<name>`` (its config dataclass) and are validated the same way
(``ConfigError`` naming the key and the fix). The adapter directory holds two files:

- ``lodabench_adapter.safetensors``: the trainable tensors only (``methods.checkpoint.save_trainable``;
  its metadata repeats the method name and config, so the file alone is checked on load);
- ``lodabench_adapter.json``: ``{"format", "method", "options", "lodabench_version"}``.

The names differ from PEFT's ``adapter_config.json`` / ``adapter_model.safetensors`` on purpose:
a lodabench adapter is not in PEFT's format (LoDA has no PEFT counterpart), and a directory must
not look like one it is not. ``methods.checkpoint.export_peft`` writes PEFT's format for lora/dora.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from lodabench.errors import CheckpointError

ADAPTER_WEIGHTS = "lodabench_adapter.safetensors"
ADAPTER_CONFIG = "lodabench_adapter.json"
ADAPTER_FORMAT = 1


def apply_method(model: nn.Module, name: str, **options: Any) -> nn.Module:
    """Freeze ``model`` and inject method ``name`` with ``options`` (defaults: its dataclass).

    The injected modules take the model's train/eval mode: a freshly built nn.Module is in train
    mode, so without this the adapter dropout of a model loaded for inference (HF models load in
    eval mode) would be silently active. A door: the plugins are loaded first, so ``name`` may be a
    plugin's method.
    """
    from lodabench import methods
    from lodabench.config.plugin_loader import load_plugins

    load_plugins()
    was_training = model.training
    return methods.apply_method(model, {"name": name, **options}).train(was_training)


def method_options(model: nn.Module) -> dict[str, Any]:
    """The full, validated options of the method applied to ``model`` (without ``name``)."""
    info = _method_info(model, "method_options")
    return {k: v for k, v in info["config"].items() if k != "name"}


def save_adapter(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write the trainable tensors and the method config to ``directory`` (created if needed)."""
    from lodabench import __version__
    from lodabench.io import atomic_write_json
    from lodabench.methods.checkpoint import save_trainable

    info = _method_info(model, "save_adapter")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_trainable(model, out / ADAPTER_WEIGHTS)
    atomic_write_json(out / ADAPTER_CONFIG, {
        "format": ADAPTER_FORMAT,
        "method": info["name"],
        "options": method_options(model),
        "lodabench_version": __version__,
    })
    return out


def read_adapter_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The JSON config of an adapter directory, checked for the keys load_adapter needs."""
    path = Path(directory) / ADAPTER_CONFIG
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file. Fix: point load_adapter to a directory written by "
                              "lodabench.save_adapter") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc}). Fix: re-save the adapter") from exc
    missing = [k for k in ("format", "method", "options") if k not in cfg]
    if missing:
        raise CheckpointError(f"{path}: missing key {missing[0]!r}. Fix: re-save the adapter with lodabench.save_adapter")
    if cfg["format"] != ADAPTER_FORMAT:
        raise CheckpointError(f"{path}: adapter format {cfg['format']!r}, this lodabench reads format "
                              f"{ADAPTER_FORMAT}. Fix: load it with lodabench {cfg.get('lodabench_version', '?')}")
    return cfg


def load_adapter(base_model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Rebuild the saved method on ``base_model`` and load its trainable tensors (strict).

    ``base_model`` must hold the same base weights the adapter was trained on (the same
    checkpoint, or the same random init); a checkpoint of another method/config is refused
    before any weight changes (``methods.checkpoint.load_trainable``).
    """
    from lodabench.methods.checkpoint import load_trainable

    cfg = read_adapter_config(directory)
    model = apply_method(base_model, cfg["method"], **cfg["options"])
    load_trainable(model, Path(directory) / ADAPTER_WEIGHTS)
    return model


def import_loralib(model: nn.Module, path: str | os.PathLike, alpha: float, **options: Any) -> nn.Module:
    """The LoRA authors' checkpoint (microsoft/LoRA, loralib format) on a plain HF ``model``.

    Applies lodabench's ``lora`` with r and targets read from the file (GPT-2's MergedLinear q/v,
    RoBERTa's query/value) and ``alpha`` (the file does not hold it: 32 for the GPT-2 checkpoints,
    16 for RoBERTa's, per microsoft/LoRA's README and scripts), loads the factors (and a GLUE head)
    exactly, and returns the model. ``lodabench.methods.loralib_import`` says how the layouts map.
    """
    from lodabench.config.plugin_loader import load_plugins
    from lodabench.methods.loralib_import import import_loralib as _import

    load_plugins()
    return _import(model, path, alpha, **options)


def merge(model: nn.Module) -> nn.Module:
    """Fold a linear method (lora, dora, ...) into the base weights; ConfigError for the others."""
    from lodabench import methods
    from lodabench.config.plugin_loader import load_plugins

    load_plugins()  # a door: the model's method may be a plugin's
    return methods.merge_method(model)


def _method_info(model: nn.Module, caller: str) -> dict[str, Any]:
    from lodabench import methods
    info = methods.method_of(model)
    if info is None:
        raise CheckpointError(f"{caller}: the model has no lodabench method applied. "
                              "Fix: call lodabench.apply_method(model, name, **options) first")
    return info


__all__ = ["apply_method", "import_loralib", "method_options", "save_adapter", "read_adapter_config", "load_adapter", "merge",
           "ADAPTER_WEIGHTS", "ADAPTER_CONFIG"]
