"""Run the real CLI (`python -m lodabench ...`) against a temporary results dir: in a subprocess (run_cli),
or in this process (run_cli_here: refusals, skips, and whole training runs whose point is not a process)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import runpy
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from safetensors.torch import load_file

from lodabench.paths import REPO_ROOT

# A tiny but complete E2E run: real tokenizer, real data slices, greedy decoding, official scorer.
TINY_E2E = ["model=tiny-gpt2", "method=lora", "method.r=8", "data.max_train_examples=64", "data.max_eval_items=6", "data.eval_split=dev",
            "trainer.max_steps=6", "trainer.lr=1e-2", "trainer.warmup_steps=0", "trainer.batch_size=8",
            "trainer.checkpoint_every=2", "trainer.max_dev_batches=2", "decoding=greedy",
            "decoding.max_new_tokens=16", "trainer.progress=false", "decoding.progress=false"]


def run_cli(args: list[str], results_dir: Path, env: dict[str, str] | None = None,
            check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "LODABENCH_RESULTS_DIR": str(results_dir), "HF_HUB_OFFLINE": "1",
                "WANDB_MODE": "offline", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "lodabench", *args], cwd=REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"lodabench {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


# Read once per process (lru_cache'd java lookup, huggingface_hub's constants, imported plugin modules):
# a launch that sets them must be a subprocess.
READ_ONCE = {"LODABENCH_JAVA", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "LODABENCH_PLUGINS"}
# Test hooks that end the process abruptly (os._exit, as kill -9): in this process they would end pytest.
KILLS_PROCESS = {"LODABENCH_FAULT_AFTER_STEP", "LODABENCH_FAULT_AFTER_DECODE_CHUNK"}


class CliResult(subprocess.CompletedProcess):
    """What run_cli returns, for a launch run in this process (run_cli_here): same fields."""


def run_cli_here(args: list[str], results_dir: Path, env: dict[str, str] | None = None,
                 check: bool = True, timeout: int = 600) -> CliResult:
    """``python -m lodabench ARGS`` run in this pytest process: refusals, skips and whole training runs.

    A CLI subprocess spends ~6 s importing torch/transformers/peft/hydra before it starts; here the
    imports are paid once per worker. A tiny E2E training run here gives the same record metrics, dev
    loss and adapter weights (sha256) as one in a fresh subprocess, bit for bit, also back to back in one
    process, and no model outlives its launch (measured when training moved in process, issue #28).
    The process-wide state a launch touches (environment, cwd, argv, Hydra's GlobalHydra, logging
    handlers, signal handlers, torch threads and deterministic flags, the global RNGs, the registries)
    is restored after, so tests stay independent. Real subprocess launches (run_cli) still cover the entry itself.
    ``timeout`` is accepted for run_cli's signature and ignored.
    """
    del timeout
    if set(env or {}) & READ_ONCE:
        raise ValueError(f"run_cli_here cannot set {sorted(set(env) & READ_ONCE)}: this process has read them "
                         "already (cached); launch with run_cli")
    if set(env or {}) & KILLS_PROCESS:
        raise ValueError(f"run_cli_here cannot set {sorted(set(env) & KILLS_PROCESS)}: the launch would end "
                         "this process; launch with run_cli")
    out, err = io.StringIO(), io.StringIO()
    full_env = {"LODABENCH_RESULTS_DIR": str(results_dir), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                **(env or {})}
    with _isolated(full_env, REPO_ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _exit_code(_entry_main, args)
    proc = CliResult([sys.executable, "-m", "lodabench", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"lodabench {' '.join(args)} exited {code} (in process)\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def run_script_here(script: Path, args: list[str], env: dict[str, str], cwd: Path) -> CliResult:
    """``python SCRIPT ARGS`` (a small Hydra app of a test) in this process, isolated as run_cli_here."""
    out, err = io.StringIO(), io.StringIO()
    with _isolated(env, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _exit_code(lambda: runpy.run_path(str(script), run_name="__main__"), [*args], argv0=str(script))
    return CliResult([sys.executable, str(script), *args], code, out.getvalue(), err.getvalue())


def _entry_main() -> None:
    from lodabench.run.entry import main  # what `python -m lodabench` runs (lodabench/__main__.py)
    main()


def _exit_code(main, args: list[str], argv0: str = "lodabench") -> int:
    sys.argv = [argv0, *args]
    try:
        main()
    except SystemExit as exc:  # the entry's refusals: exit 2 (or the code Hydra/argparse chose)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # a crash: what the interpreter would print, exit 1
        traceback.print_exc()
        return 1
    return 0


@contextlib.contextmanager
def _isolated(env: dict[str, str], cwd_for_run: Path):
    saved_env, cwd, argv = dict(os.environ), os.getcwd(), list(sys.argv)
    loggers = {name: _logger_state(logging.getLogger(name)) for name in (None, "hydra", "lodabench")}
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    registries, threads = _registry_state(), torch.get_num_threads()
    flags = _torch_flags()
    rng = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    os.environ.update(env)
    os.chdir(cwd_for_run)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(cwd)
        sys.argv = argv
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # HydraConfig.get() outside a launch raises again
        for name, state in loggers.items():
            _restore_logger(logging.getLogger(name), state)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        _restore_registries(registries)
        torch.set_num_threads(threads)
        _restore_torch_flags(flags)  # trainer.deterministic sets them for the process
        random.setstate(rng[0])  # a launch seeds the global generators: the test's own draws go on
        np.random.set_state(rng[1])
        torch.random.set_rng_state(rng[2])


def _torch_flags() -> tuple:
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)


def _restore_torch_flags(flags: tuple) -> None:
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[2], flags[3]


def _logger_state(logger: logging.Logger) -> tuple:
    return list(logger.handlers), logger.level, logger.propagate, logger.disabled


def _restore_logger(logger: logging.Logger, state: tuple) -> None:
    logger.handlers[:], logger.level, logger.propagate, logger.disabled = state


def _registry_state() -> list[tuple]:
    from lodabench.config.registry import _GROUPS
    return [(reg, {name: dict(getattr(reg, name)) for name in _REGISTRY_DICTS}, reg.loaded)
            for reg in _GROUPS.values()]


# Restored in place: modules keep aliases of these dicts (lodabench.methods.REGISTRY is METHODS.modules).
_REGISTRY_DICTS = ("modules", "builtin_modules", "specs", "builtin")


def _restore_registries(saved: list[tuple]) -> None:
    for reg, dicts, loaded in saved:
        for name, content in dicts.items():
            getattr(reg, name).clear()
            getattr(reg, name).update(content)
        reg.loaded = loaded


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The launch refused with exit 2 and one message, no traceback, naming each of ``words``; its stderr."""
    assert proc.returncode == 2, (proc.stdout[-1500:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for word in words:
        assert word in proc.stderr, (word, proc.stderr[-3000:])
    return proc.stderr


def run_dirs(results_dir: Path) -> list[Path]:
    return sorted(p.parent for p in (results_dir / "runs").rglob("record.json"))


def final_weights(run_dir: Path) -> dict:
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_file(str(run_dir / "checkpoints" / latest["dir"] / "trainable.safetensors"))
