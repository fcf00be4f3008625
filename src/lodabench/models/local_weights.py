"""A local copy of the recipe's weights (``model.pretrained=<dir>``) is checked against the recipe.

A local ``model.pretrained`` keeps the recipe's run directory (run_names.LOCAL_COPY_OVERRIDES), so
preflight checks that its config.json gives the architecture of the model the recipe names (that
model's known shapes, lodabench.models.params). Apart from lodabench.models.pretrained, which loads models and so sits
below lodabench.models.params.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from transformers import AutoConfig

from lodabench.errors import ConfigError
from lodabench.models.pretrained import model_description, read_model_conf
from lodabench.models.params import transformers_config
from lodabench.paths import CONF_DIR
from lodabench.config.run_names import is_local_path

# Sizes that make two configs the same architecture (transformers' attribute_map turns GPT-2's
# n_embd/n_layer/n_head/n_positions into these names).
ARCHITECTURE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "vocab_size", "max_position_embeddings")


def recipe_model(model_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``conf/model/<model.name>.yaml``: the model the recipe names (None for a model with no file of its own)."""
    name = model_cfg["name"] if isinstance(model_cfg, Mapping) else model_cfg.name  # a mapping or ModelConfig
    path = CONF_DIR / "model" / f"{name}.yaml"
    return read_model_conf(path) if path.is_file() else None


def check_local_weights(model_cfg: Mapping[str, Any]) -> None:
    """A local ``model.pretrained`` is not part of a run's identity (its run directory is the recipe's),
    so it must be a copy of the recipe's model: its config.json must give the recipe's architecture
    (the hub model's known config, lodabench.models.params). Anything else needs a model config of its own."""
    model_cfg = model_description(model_cfg)
    recipe = recipe_model(model_cfg)
    if model_cfg.source != "pretrained" or not is_local_path(model_cfg.pretrained) or recipe is None:
        return
    if recipe.get("source") != "pretrained" or is_local_path(recipe.get("pretrained")):
        return  # the recipe itself names a local directory: nothing else to be a copy of
    expected = architecture(_recipe_config(recipe, model_cfg.pretrained), model_cfg.config_overrides)
    found = architecture(_local_config(model_cfg.pretrained), model_cfg.config_overrides)
    differ = [f"{k}: {found.get(k)!r} (recipe {expected[k]!r})" for k in expected if found.get(k) != expected[k]]
    if differ:
        raise ConfigError(
            f"model.pretrained={model_cfg.pretrained!r} is not a copy of model={model_cfg.name} "
            f"({recipe['pretrained']}): its config.json differs in {'; '.join(differ)}. A local directory runs "
            f"in the recipe's run directory, so it must hold the recipe's model. Fix: point model.pretrained at a "
            f"copy of {recipe['pretrained']}, or give this model a config of its own (conf/model/<name>.yaml "
            "with its own name) and use model=<name>.")


def architecture(config: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ARCHITECTURE_KEYS of a transformers config after the run's config_overrides (dropouts, ...)."""
    for key, value in dict(overrides).items():
        setattr(config, key, value)
    return {k: getattr(config, k, None) for k in ARCHITECTURE_KEYS}


def _recipe_config(recipe: dict[str, Any], location: str) -> Any:
    try:
        return transformers_config(recipe)[0]
    except ConfigError as exc:
        raise ConfigError(f"model.pretrained={location!r}: cannot check it against model={recipe['name']} "
                          f"({exc}). Fix: give this model a config of its own (conf/model/<name>.yaml).") from None


def _local_config(location: str) -> Any:
    path = Path(os.path.expanduser(location))
    try:
        if not (path / "config.json").is_file():
            raise OSError(f"{path / 'config.json'} does not exist")
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model.pretrained={location!r}: no readable config.json there ({exc}). Fix: a directory "
                          "made by `hf download <id> --local-dir DIR` or save_pretrained (config.json and "
                          "weights).") from None


__all__ = ["ARCHITECTURE_KEYS", "architecture", "check_local_weights", "recipe_model"]
