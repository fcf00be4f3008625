"""One place finds the official jars (pycocoevalcap) for both the E2E and the DART scorers, and a
missing or partial install stops scoring with the reinstall command."""

from __future__ import annotations

import importlib.machinery
import importlib.util

import pytest

from lodabench.errors import ScoringError
from lodabench.scoring import coco, dart
from lodabench.scoring.java import pycocoevalcap_dir


def test_both_scorers_use_the_one_jar_folder():
    assert coco.pycocoevalcap_dir is dart.pycocoevalcap_dir is pycocoevalcap_dir
    assert (pycocoevalcap_dir() / "meteor" / "meteor-1.5.jar").is_file()


def test_missing_package_names_the_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ScoringError, match=r"pip install pycocoevalcap==1\.2"):
        pycocoevalcap_dir()


def test_package_without_jars_names_the_reinstall(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec("pycocoevalcap", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(ScoringError, match=r"no meteor/meteor-1\.5\.jar.*--force-reinstall"):
        pycocoevalcap_dir()
