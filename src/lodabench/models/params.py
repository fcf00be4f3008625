"""Trainable-parameter counts from configs only: no weights, no network (meta device).

    python -m lodabench.models.params model=gpt2-medium method=lora [method.r=8]
    lodabench params model=roberta-base method=condlora

prints one JSON object (``count_parameters`` of the model with the method applied, plus the
model/method names and the method config). The core is ``count_for(model, method_cfg)``; the
Hydra wrapper only composes ``conf/`` (model/<m>.yaml, method/<x>.yaml and overrides).

Models whose ``source`` is a hub id are described by hub-free configs of the same shapes
(``HUB_FREE_CONFIGS``: e.g. GPT-2 medium = GPT2Config(n_embd=1024, n_layer=24, n_head=16)), so
counting never downloads. ``param_table`` builds the all-methods table (scripts/param_table.py).

Trained versus stored: ``count_for`` also reports ``stored_without_head``, the numbers a finished
run keeps. They equal the trainable ones except for prefix tuning with Li & Liang's MLP
(``method.projection=mlp``): P' and the MLP train, and only the merged prefix is kept
(``methods.prefix.merge_prefix_projection``). GPT-2 medium (L=24, d=1024), prefix length n=10,
MLP hidden 512: trained n*d + (d*512 + 512) + (512*2*L*d + 2*L*d) = 25,750,016; stored
2*L*d*n = 491,520.

The published PreLayer "0.35M" (LoRA paper Table 3, GPT-2 M; LoDA Table 1 "PreLayer*", copied
from Li & Liang) is neither count. The LoRA paper's formula is |Theta| = L * d * (l_p + l_i):
24 * 1024 = 24,576 per position, so 0.35M needs l_p + l_i = 14.2 (1e6 units) or 14.9 (2^20 units;
only l = 15 prints as 0.35M, and only in 2^20 units). Its GPT-2 L row (0.77M; L=36, d=1280: 46,080
per position) needs 16.7 or 17.5, and no integer length prints as 0.77M in either unit. Both rows
are 0.1% of the model, Li & Liang's "by learning only 0.1% of the parameters" (their abstract):
0.1% of 354,823,168 (GPT-2 M) = 354,823 -> "0.35M"; 0.1% of 774,030,080 (GPT-2 L) = 774,030 ->
"0.77M". That 0.1% fits the stored prefix (n=10: 491,520 = 0.14%), not the trained MLP (25.75M =
7.3%), so the 0.35M corresponds to the `stored` column. ``prelayer_note`` recomputes this
arithmetic for the table.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    RobertaConfig,
)

from lodabench.errors import ConfigError
from lodabench.models.pretrained import read_model_conf
from lodabench.paths import CONF_DIR


def _hub_free() -> dict[str, PretrainedConfig]:
    # Shapes of the public checkpoints' config.json files.
    return {
        "gpt2": GPT2Config(),
        "gpt2-medium": GPT2Config(n_embd=1024, n_layer=24, n_head=16),
        "gpt2-large": GPT2Config(n_embd=1280, n_layer=36, n_head=20),
        "roberta-base": RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
        "roberta-large": RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24,
                                       num_attention_heads=16, intermediate_size=4096,
                                       max_position_embeddings=514, type_vocab_size=1),
        "bert-base-uncased": BertConfig(),
        "smollm2-135m": LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                    max_position_embeddings=8192, tie_word_embeddings=True),
    }


def _key(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower().replace("_", "-").replace("-instruct", "")


def transformers_config(model: str | Mapping[str, Any] | PretrainedConfig) -> tuple[PretrainedConfig, str]:
    """(transformers config, kind) for a model conf mapping, a known name, or a config object.

    Counting needs shapes only, so a hub model is described without downloading: by its
    ``conf/model/<name>.yaml``, a hub-free config of the same name, or a local folder.
    """
    if isinstance(model, PretrainedConfig):
        kind = "sequence_classification" if model.model_type in ("bert", "roberta") else "causal_lm"
        return model, kind
    if isinstance(model, str):
        if (CONF_DIR / "model" / f"{model}.yaml").is_file():
            model = read_model_conf(model)
        elif _key(model) in _hub_free():
            return transformers_config(_hub_free()[_key(model)])
        else:
            raise ConfigError(f"model={model!r}: no conf/model/{model}.yaml and no hub-free config of that "
                              f"name. Known: {', '.join(_hub_free())}")
    m = dict(model)
    kind = m.get("kind") or ("sequence_classification" if m.get("family") in ("bert", "roberta") else "causal_lm")
    overrides = dict(m.get("config_overrides") or {})
    source, pretrained, name = m.get("source", "pretrained"), m.get("pretrained"), m.get("name", "")
    if source == "config":
        return _config_for(pretrained, overrides), kind
    for candidate in (name, str(pretrained)):
        if _key(candidate) in _hub_free():
            cfg = _hub_free()[_key(candidate)]
            for k, v in overrides.items():
                setattr(cfg, k, v)
            return cfg, kind
    try:
        from lodabench.models.pretrained import resolve_location

        location = resolve_location(pretrained)
        if Path(location).is_dir():
            return AutoConfig.from_pretrained(location, **overrides), kind
    except ConfigError:
        pass
    raise ConfigError(f"model={name or pretrained!r}: cannot describe it without downloading. Fix: add its shapes "
                      "to lodabench.models.params._hub_free or use model.source=config")


def _config_for(model_type: Any, overrides: dict[str, Any]) -> PretrainedConfig:
    """``AutoConfig.for_model`` with its ValueError (an unknown model_type) as a ConfigError naming the key."""
    try:
        return AutoConfig.for_model(model_type, **overrides)
    except ValueError:
        raise ConfigError(f"model.pretrained={model_type!r} is not a transformers model_type (model.source=config "
                          "builds a random-init model of that type). Fix: set model.pretrained to one such as gpt2, "
                          "llama, bert or roberta, or pick a model of conf/model/") from None


def build_meta_model(model: str | Mapping[str, Any] | PretrainedConfig, num_labels: int = 2,
                     device: str = "meta") -> torch.nn.Module:
    cfg, kind = transformers_config(model)
    if kind == "sequence_classification":
        cfg.num_labels = num_labels
    auto = AutoModelForSequenceClassification if kind == "sequence_classification" else AutoModelForCausalLM
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with torch.device(device):
        return auto.from_config(cfg)


def count_for(model: str | Mapping[str, Any] | PretrainedConfig, method_cfg: Mapping[str, Any] | str,
              num_labels: int = 2) -> dict[str, Any]:
    """Parameter counts of ``model`` with ``method_cfg`` applied, from configs only (meta device)."""
    from lodabench.methods import apply_method, count_parameters

    if isinstance(method_cfg, str):
        method_cfg = {"name": method_cfg}
    device = "meta"
    try:
        with torch.device("meta"):
            net = apply_method(build_meta_model(model, num_labels), method_cfg)
    except (NotImplementedError, RuntimeError) as exc:
        if "meta" not in str(exc):
            raise
        # The method needs real values at init (e.g. prompts sampled from the vocabulary):
        # count on a random-init CPU model instead (same shapes, slower).
        device = "cpu"
        net = apply_method(build_meta_model(model, num_labels, device="cpu"), method_cfg)
    counts = count_parameters(net)
    counts["device"] = device
    counts["method_config"] = dict(getattr(net, "lodabench_method", {}).get("config", dict(method_cfg)))
    counts["stored_without_head"] = stored_without_head(net, counts)  # after: merging rewrites the record
    return counts


def stored_without_head(net: torch.nn.Module, counts: dict[str, Any]) -> int:
    """Numbers a finished run keeps (task head excluded): the merged prefix for prefix+MLP."""
    from lodabench.methods import count_parameters

    if not hasattr(net, "projection") or getattr(net, "lodabench_method", {}).get("name") != "prefix":
        return counts["trainable_without_head"]
    from lodabench.methods.prefix import merge_prefix_projection

    return count_parameters(merge_prefix_projection(net))["trainable_without_head"]


def prelayer_note() -> list[str]:
    """The arithmetic behind the published PreLayer counts (LoRA paper Table 3: GPT-2 M 0.35M,
    GPT-2 L 0.77M), recomputed from the models' shapes (see the module docstring)."""
    lines = ["PreLayer (LoRA paper Table 3 / LoDA Table 1, numbers copied from Li & Liang 2021):"]
    for model, published in (("gpt2-medium", 0.35), ("gpt2-large", 0.77)):
        cfg, _ = transformers_config(model)
        per_pos = cfg.n_layer * cfg.n_embd
        total = count_for(model, "ft")["total"]
        fits = {unit: [n for n in range(1, 100) if round(per_pos * n / scale, 2) == published]
                for unit, scale in (("1e6", 1e6), ("2^20", 2**20))}
        lines.append(
            f"- {model}: L*d = {cfg.n_layer}*{cfg.n_embd} = {per_pos:,} per position; {published}M needs "
            f"l_p+l_i = {published * 1e6 / per_pos:.1f} (1e6 units) or {published * 2**20 / per_pos:.1f} (2^20 units); "
            f"integer l_p+l_i printing as {published}M: {fits['1e6'] or 'none'} (1e6), {fits['2^20'] or 'none'} (2^20); "
            f"0.1% of the model's {total:,} = {total / 1000:,.0f} -> {round(total / 1e9, 2)}M")
    lines.append("- 0.1% of the model gives both published numbers, L*d*(l_p+l_i) does not (see the integer fits): "
                 "the published count is Li & Liang's \"0.1% of the parameters\", and 0.1% fits the stored prefix "
                 "(`stored` column), not the trained MLP (`trainable` of prefix+mlp), which is far larger.")
    return lines


def method_defaults(name: str) -> dict[str, Any]:
    """The method's defaults (its config dataclass: the papers' values, src/lodabench/config/schema.py)."""
    from lodabench.config.schema import defaults_of

    return defaults_of("method", name)


# Per-model settings of the rank-r methods in the papers' tables (the method defaults are the
# GPT-2 E2E recipe): LoRA paper Table 9, RoBERTa-base GLUE: r_q = r_v = 8, alpha = 8.
TABLE_OVERRIDES: dict[str, dict[str, Any]] = {"roberta-base": {"r": 8, "alpha": 8.0}}
# Extra rows: (row label, overrides of method=<name>'s defaults). prefix+mlp: Li & Liang's MLP
# reparameterisation (conf/experiment/prefix_e2e.yaml), trained count vs stored (merged) count.
TABLE_VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "prefix": [("prefix+mlp", {"projection": "mlp", "init": "random"})],
}


def param_table(models: tuple[str, ...] = ("gpt2-medium", "roberta-base"),
                methods: list[str] | None = None) -> list[dict[str, Any]]:
    from lodabench.methods import method_names

    rows = []
    for model in models:
        for name, label, extra in _table_methods(methods or method_names()):
            cfg = method_defaults(name)
            cfg.update({k: v for k, v in TABLE_OVERRIDES.get(model, {}).items() if k in cfg})
            cfg.update(extra)
            row: dict[str, Any] = {"model": model, "method": label}
            try:
                c = count_for(model, cfg)
            except Exception as exc:  # one method's failure must not hide the others' counts
                row.update(error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                rows.append(row)
                continue
            shown = {k: v for k, v in c["method_config"].items() if k in ("r", "alpha", "rank", "keep", "targets", "bottleneck", "num_virtual_tokens", "prefix_length", "top_layers")}
            if c["method_config"].get("projection") == "mlp":
                shown["projection_hidden"] = c["method_config"]["projection_hidden"]
            row.update(
                config=json.dumps(shown, sort_keys=True),
                trainable=c["trainable_without_head"],
                trainable_M=round(c["trainable_without_head_M"], 6),
                trainable_Mi=round(c["trainable_without_head_Mi"], 6),
                paper=c["paper"],
                stored=c["stored_without_head"],
                head=c["head"],
                total=c["total"],
            )
            rows.append(row)
    return rows


def _table_methods(names: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method name, row label, config overrides): each method, then its TABLE_VARIANTS."""
    out = []
    for name in names:
        out.append((name, name, {}))
        out.extend((name, label, dict(extra)) for label, extra in TABLE_VARIANTS.get(name, []))
    return out


def write_table(rows: list[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    from lodabench.io import atomic_write_text, write_csv

    out = Path(out_dir)
    cols = ["model", "method", "config", "trainable", "trainable_M", "trainable_Mi", "paper", "stored", "head", "total",
            "error"]
    write_csv(out / "param_counts.csv", rows, cols)
    lines = [
        "# Trainable parameters per method (task head excluded)",
        "",
        "Built from configs on the meta device by `scripts/param_table.py` (lodabench.models.params.param_table);",
        "method hyperparameters are method=<name>'s defaults (its config dataclass). `paper` = trainable / 2^20 with two decimals,",
        "as the LoDA paper prints 393,216 as 0.38M. `head` = the classification head, trained but not counted.",
        "RoBERTa-base rows use LoRA paper Table 9's r=8, alpha=8 for the rank-r methods (TABLE_OVERRIDES).",
        "`stored` = the numbers a finished run keeps: equal to `trainable` except prefix+mlp (Li & Liang's",
        "MLP reparameterisation), whose MLP is merged into the plain prefix after training.",
        "",
        "| model | method | config | trainable | 1e6 | 2^20 | paper | stored | head |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['method']} | n/a: {r['error']} | | | | | | |")
        else:
            lines.append(f"| {r['model']} | {r['method']} | `{r['config']}` | {r['trainable']:,} | "
                         f"{r['trainable_M']:.4f} | {r['trainable_Mi']:.4f} | {r['paper']} | {r['stored']:,} | "
                         f"{r['head']:,} |")
    if any(str(r["method"]).startswith("prefix") for r in rows):
        lines += [""] + prelayer_note()
    atomic_write_text(out / "param_counts.md", "\n".join(lines) + "\n")
    return out / "param_counts.csv", out / "param_counts.md"


def compose(overrides: list[str]) -> tuple[Any, Any]:
    """(model node, method node) composed by Hydra from conf/ with command-line overrides; Hydra's
    errors (an unknown model or method, a misspelt key) are one ConfigError line, not a traceback."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from lodabench.config.schema import compose as compose_run  # plugins and the schema nodes, as the entrypoint

    try:
        cfg = compose_run(overrides)
    except HydraException as exc:
        raise ConfigError(_hydra_line(exc)) from None
    model = OmegaConf.to_container(cfg.model, resolve=False)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    return model, method


def _hydra_line(exc: Exception) -> str:
    """Hydra's multi-line message in one line: its first line, the cause, and the options it lists."""
    first, *rest = str(exc).splitlines()
    options = [line.strip() for line in rest if line.startswith("\t") and "provider=" not in line]
    cause = f" ({str(exc.__cause__).splitlines()[0]})" if exc.__cause__ else ""
    known = f". Known: {', '.join(options)}" if options else ""
    first = first.removeprefix("In 'config': ").rstrip(".")
    return f"{first}{cause}{known}. Fix: {USAGE} (model.<key>/method.<key> only for keys of those configs)"


USAGE = "lodabench params model=<conf/model name> method=<method name> [method.<key>=<value> ...]"
GROUPS = ("model", "method", "experiment")  # what decides the counts; other run overrides are ignored


def _overrides(argv: list[str]) -> list[str]:
    """The overrides that decide the counts; an option (``--x``) is refused, not silently ignored."""
    flags = [a for a in argv if a.startswith("-")]
    if flags:
        raise ConfigError(f"lodabench params: unknown option {flags[0]!r} (it takes Hydra overrides only). "
                          f"Fix: {USAGE}")
    return [a for a in argv if a.split("=")[0].lstrip("+~").split(".")[0] in GROUPS]


def main(argv: list[str] | None = None) -> int:
    """``lodabench params model=<m> method=<x> [method.k=v]``: the counts as JSON. Plugins load first
    (as for a run), so ``method=<a plugin's method>`` composes its config and counts."""
    from lodabench.config.plugin_loader import load_plugins_or_exit

    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        print(f"usage: {USAGE}\n\nTrainable-parameter counts from configs only (no weights, no network), as JSON.")
        return 0
    load_plugins_or_exit()
    model, method = compose(_overrides(argv))
    counts = count_for(model, method)
    print(json.dumps({"model": model.get("name"), "method": method.get("name"), **counts}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from lodabench.errors import LodabenchError

    try:
        raise SystemExit(main())
    except LodabenchError as exc:
        print(f"lodabench params: error: {exc}", file=sys.stderr)
        raise SystemExit(2)
