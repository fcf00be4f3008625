"""Bad input to the tools (issue 27): a missing tokenizer names ``model.tokenizer`` (not
``model.pretrained``); ``lodabench tables`` / ``lodabench params`` answer an unwritable output
directory, an unknown model or method and a misspelt option with exit 2 and one line naming the
directory or key and the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lodabench import cli

from lodabench.results import tables
from lodabench.errors import ConfigError, LodabenchError
from lodabench.models.pretrained import load_tokenizer, read_model_conf
from lodabench.paths import REPO_ROOT

rel = pytest.mark.reliability


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lodabench.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    return line


def _model(**values) -> dict:
    return {**read_model_conf("tiny-gpt2"), **values}


# ----------------------------------------------------------------------------- the tokenizer


@rel(case="model.tokenizer names a path that does not exist",
     done="load_tokenizer(tiny-gpt2 with model.tokenizer=<tmp>/no_such_tokenizer), as a run does before the model",
     expect="ConfigError naming model.tokenizer=<the path>, that it does not exist, and the fix (a directory "
            "with tokenizer.json or vocab.json + merges.txt, a hub id, or null); no word of model.pretrained")
def test_missing_tokenizer_path_names_model_tokenizer(tmp_path):
    missing = tmp_path / "no_such_tokenizer"
    with pytest.raises(ConfigError) as err:
        load_tokenizer(_model(tokenizer=str(missing)))
    assert str(err.value).startswith(f"model.tokenizer={str(missing)!r}: the tokenizer path does not exist. Fix: ")
    assert "model.tokenizer=null" in str(err.value) and "model.pretrained" not in str(err.value)


def test_tokenizer_dir_without_tokenizer_files_names_model_tokenizer(tmp_path):
    with pytest.raises(ConfigError, match=r"model.tokenizer='.*': no tokenizer transformers can load there .*"
                                          r"Fix: point model.tokenizer at a directory with tokenizer.json"):
        load_tokenizer(_model(tokenizer=str(tmp_path)))


def test_missing_packaged_tokenizer_names_model_tokenizer():
    with pytest.raises(ConfigError, match=r"^model.tokenizer='pkg://lodabench/no_such_dir': .* does not exist"):
        load_tokenizer(_model(tokenizer="pkg://lodabench/no_such_dir"))


def test_the_models_own_missing_tokenizer_names_model_pretrained(tmp_path):
    """With model.tokenizer unset the tokenizer is read from the weights' directory: that key is named."""
    cfg = _model(source="pretrained", pretrained=str(tmp_path / "no_weights"), tokenizer=None)
    with pytest.raises(ConfigError, match=r"^model.pretrained='.*no_weights': .*or set model.tokenizer to where"):
        load_tokenizer(cfg)


# ----------------------------------------------------------------------------- lodabench tables


@rel(case="lodabench tables with an output directory that cannot be created",
     done="lodabench tables --out-dir <a regular file>/tables",
     expect="exit 2, no traceback: one line naming --out-dir, the path, the OS reason and the fix")
def test_tables_unwritable_out_dir_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "tables"
    line = _one_line(_cli("tables", "--runs-dir", str(tmp_path), "--out-dir", str(out), "--no-plots"))
    assert line == (f"lodabench: error: --out-dir {out} cannot be created (Not a directory). Fix: pass --out-dir "
                    "DIR, a directory you can write, or set LODABENCH_RESULTS_DIR")


def test_tables_write_failure_names_the_file(tmp_path, monkeypatch):
    def refuse(runs_dir, out_dir, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out_dir / "table1.csv"))

    monkeypatch.setattr(tables, "build", refuse)
    with pytest.raises(LodabenchError, match=r"^cannot write .*table1.csv \(Permission denied\). Fix: pass --out-dir"):
        tables.main(["--runs-dir", str(tmp_path), "--out-dir", str(tmp_path / "t")])


def test_tables_runs_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "runs").write_text("x")
    assert cli.main(["tables", "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "t")]) == 2
    assert "--runs-dir" in capsys.readouterr().err and not (tmp_path / "t").exists()


# ----------------------------------------------------------------------------- lodabench params


@rel(case="lodabench params with an unknown model",
     done="lodabench params model=no_such_model method=lora",
     expect="exit 2, no traceback: one line naming model/no_such_model, the known models and the usage")
def test_params_unknown_model_is_one_line():
    line = _one_line(_cli("params", "model=no_such_model", "method=lora"))
    assert line.startswith("lodabench: error: Could not find 'model/no_such_model'. Known: gpt2, ")
    assert "tiny-gpt2" in line and "Fix: lodabench params model=" in line


@pytest.mark.parametrize("args, says", [
    (["model=tiny-gpt2", "method=no_such_method"], "Could not find 'method/no_such_method'. Known: adapter_h"),
    (["model=tiny-gpt2", "method=lora", "method.rank=2"], "Could not override 'method.rank' (Key 'rank' not in"),
    (["model=tiny-gpt2", "--out", "x"], "lodabench params: unknown option '--out'"),
    (["model=tiny-gpt2", "method=lora", "model.pretrained=no_such_type"],
     "model.pretrained='no_such_type' is not a transformers model_type"),
])
def test_params_bad_arguments_are_one_line(args, says, capsys):
    assert cli.main(["params", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Fix: " in err


def test_params_experiment_decides_the_counts(capsys):
    """experiment=<name> sets the model and method: it is not dropped like the run's other overrides."""
    assert cli.main(["params", "experiment=e2e_loda", "trainer.lr=1"]) == 0
    assert '"method": "loda"' in capsys.readouterr().out


def test_unknown_subcommand_is_named(capsys):
    assert cli.main(["tabels"]) == 2
    assert "unknown subcommand 'tabels'" in capsys.readouterr().err
