"""`lodabench` console script: subcommands, else the Hydra train+eval entrypoint.

    lodabench score e2e --hyp HYP --refs REFS [--mteval python|perl]
    lodabench score dart --mode lora|official --hyp HYP --refs REFS
    lodabench tables [...]
    lodabench params model=<m> method=<x> [method.r=..]
    lodabench models [--local-dir DIR] <hydra overrides>
    lodabench verify RUN_DIR [RUN_DIR...]     # exit 0 trusted, 1 inputs changed, 2 not a run dir
    lodabench [run] <hydra overrides>          # same as python -m lodabench

``lodabench --help`` lists these; ``lodabench run --help`` is Hydra's own page (the config groups).
"""

from __future__ import annotations

import importlib
import sys

from lodabench.errors import LodabenchError

# name -> (module whose main(argv) runs it, one line of help); run: lodabench.run.entry, Hydra's main
SUBCOMMANDS = {
    "run": ("lodabench.run.entry", "train + evaluate one config (the default; Hydra overrides, -m for a sweep)"),
    "models": ("lodabench.models.download", "download the weights and tokenizer a recipe needs (for offline nodes)"),
    "params": ("lodabench.models.params", "trainable-parameter counts of model x method, from configs only"),
    "tables": ("lodabench.results.tables", "aggregate results/runs into the paper-style tables and comparisons"),
    "report": ("lodabench.results.reports", "one paper's reproduction report: Markdown, CSV, <paper>.html (--paper loda|lora|condlora)"),
    "score": ("lodabench.scoring.cli", "score hypotheses with the official E2E / DART metrics"),
    "compare": ("lodabench.results.compare", "paired seed x item test of two systems' runs (bootstrap / AR, TOST)"),
    "plan-seeds": ("lodabench.results.seed_plan", "seeds a difference needs for 80 % power, from runs' seed and item variance"),
    "attribute": ("lodabench.results.attribute_cli", "how much of ours - paper each no-retraining factor explains, with CIs"),
    "verify": ("lodabench.run.fingerprints", "re-hash a run's data, weights, tokenizer, scorer and plugins: trusted?"),
}

HELP = """usage: lodabench [SUBCOMMAND] [ARGS...]
       lodabench [run] [HYDRA OVERRIDES...]

subcommands:
{commands}

A run is a Hydra config composed from conf/ (every key: src/lodabench/config/schema.py), e.g.
  lodabench experiment=e2e_loda                               # LoDA on E2E, GPT-2 medium
  lodabench experiment=e2e_loda model=tiny-gpt2 trainer.max_steps=2 trainer.device=cpu
  lodabench -m +sweep=e2e_table1                              # a paper table, every seed
  lodabench models experiment=e2e_loda                        # weights first, for offline nodes
`lodabench run --help` shows Hydra's page (config groups and flags); `lodabench <subcommand> --help`
each subcommand's options. `python -m lodabench ...` is the same as `lodabench run ...`.
"""


def help_text() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {line}" for name, (_, line) in SUBCOMMANDS.items()]
    return HELP.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[0] if argv else "run"
    if cmd in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if cmd in SUBCOMMANDS and cmd != "run":
        try:
            return importlib.import_module(SUBCOMMANDS[cmd][0]).main(argv[1:])
        except LodabenchError as exc:
            print(f"lodabench: error: {exc}", file=sys.stderr)
            return 2
    if cmd.isidentifier() and cmd not in SUBCOMMANDS:  # a bare word is no Hydra override: a misspelt subcommand
        print(f"lodabench: error: unknown subcommand {cmd!r}. Fix: one of {', '.join(SUBCOMMANDS)} "
              "(lodabench --help), or Hydra overrides key=value", file=sys.stderr)
        return 2
    if cmd == "run":
        argv = argv[1:]
    sys.argv = [sys.argv[0], *argv]
    from lodabench.run.entry import main as hydra_entry
    hydra_entry()
    return 0


if __name__ == "__main__":
    sys.exit(main())
