"""runs_helpers.run_cli_here: a launch in the pytest process gives run_cli's answer and leaves the
process as it found it (environment, cwd, argv, loggers, Hydra, the registries, in place)."""

from __future__ import annotations

import logging
import os
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from lodabench import methods
from runs_helpers import TINY_E2E, assert_refused, run_cli_here


def test_a_refusal_in_process_leaves_the_process_as_it_was(tmp_path):
    env, cwd, argv = dict(os.environ), os.getcwd(), list(sys.argv)
    handlers, modules = list(logging.getLogger().handlers), methods.METHODS.modules
    names = dict(modules)
    proc = run_cli_here([*TINY_E2E, "trainer.lr=nan"], tmp_path, check=False)  # refused in preflight, under Hydra
    assert_refused(proc, "trainer.lr=nan: must")
    assert dict(os.environ) == env and os.getcwd() == cwd and sys.argv == argv
    assert logging.getLogger().handlers == handlers and not GlobalHydra.instance().is_initialized()
    assert methods.METHODS.modules is modules is methods.REGISTRY and dict(modules) == names  # aliases hold


def test_a_launch_that_sets_what_a_process_reads_once_is_refused(tmp_path):
    with pytest.raises(ValueError, match="LODABENCH_JAVA.*launch with run_cli"):
        run_cli_here(TINY_E2E, tmp_path, env={"LODABENCH_JAVA": "/nonexistent/java"})


def test_check_raises_with_the_output(tmp_path):
    with pytest.raises(AssertionError, match=r"exited 2 \(in process\)[\s\S]*run_name="):
        run_cli_here([*TINY_E2E, "run_name=.."], tmp_path)
