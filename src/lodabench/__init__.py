"""lodabench: a reproducible experiment harness for parameter-efficient fine-tuning research.

The method library is usable from your own code (see README "Use the methods in your own code"):

    import lodabench
    model = lodabench.apply_method(model, "loda", r=4, targets=["q", "v"])
    lodabench.save_adapter(model, "out/"); model = lodabench.load_adapter(fresh_base, "out/")
    model = lodabench.import_loralib(hf_model, "gpt2_md_lora_e2e.pt", alpha=32)  # the LoRA authors' files
    lodabench.register_method(spec)        # a method of your own (docs/extending.md)
    lodabench.register_task(spec); lodabench.register_scorer(spec)   # a task / scorer of your own

The names below are imported on first use, so ``import lodabench`` stays cheap (no torch).
"""

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily by __getattr__)
_LAZY = {
    "apply_method": "lodabench.library",
    "method_options": "lodabench.library",
    "save_adapter": "lodabench.library",
    "load_adapter": "lodabench.library",
    "merge": "lodabench.library",
    "import_loralib": "lodabench.library",
    "MethodSpec": "lodabench.methods.base",
    "register_method": "lodabench.methods",
    "method_names": "lodabench.methods",
    "TaskSpec": "lodabench.tasks.registry",
    "register_task": "lodabench.tasks.registry",
    "task_names": "lodabench.tasks.registry",
    "ScorerSpec": "lodabench.scoring.registry",
    "register_scorer": "lodabench.scoring.registry",
    "scorer_names": "lodabench.scoring.registry",
    "register_method_config": "lodabench.plugins",
    "load_plugins": "lodabench.plugins",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'lodabench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
