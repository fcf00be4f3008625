"""Fingerprints (lodabench.run.fingerprints): sha256 of what a run read in record.json's ``inputs``, the
refusal to skip or resume when those bytes changed, and ``lodabench verify``.

Unit tests build small folders by hand; the CLI test copies one tiny E2E run from a local weights
folder and a copy of ../shared/data (made once per session, shared with
tests/test_reliability_fingerprints.py; skipped when ../shared is absent), then changes its training file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from lodabench import cli, plugins

from lodabench.run import fingerprints as fp
from lodabench.errors import ConfigError
from lodabench.paths import DATA_ROOT_ENV, REPO_ROOT
from runs_helpers import TINY_E2E, run_cli_here, run_dirs


# ----------------------------------------------------------------------------- helpers (also used by
# tests/test_reliability_fingerprints.py)
def make_weights_dir(path: Path, tokenizer_dir: Path) -> Path:
    """A local model folder (save_pretrained of the tiny GPT-2) with the GPT-2 tokenizer's files."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=1024, vocab_size=50257,
                        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, path / f.name)
    return path


def copy_data_root(src: Path, dest: Path) -> Path:
    """A writable copy of the E2E files (../shared/data is read-only)."""
    shutil.copytree(src / "e2e", dest / "e2e")
    for f in (dest / "e2e").iterdir():
        f.chmod(0o644)
    return dest


def args_for(weights: Path) -> list[str]:
    return [*TINY_E2E, "decoding.batch_size=2", "model.source=pretrained", f"model.pretrained={weights}"]


def env_for(data: Path) -> dict[str, str]:
    return {DATA_ROOT_ENV: str(data)}


def flip_byte(path: Path, offset: int = -10) -> None:
    """Change one byte, keep the size and the mtime: only a content hash can see it."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] = ord("x") if data[offset] != ord("x") else ord("y")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def record_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text())


def fingerprinted_done(session_folder, data_root: Path, tokenizer_dir: Path) -> Path:
    """<root>/{weights,data,results}: one complete tiny E2E run from a local weights folder and a writable
    copy of the E2E data ($LODABENCH_DATA_ROOT), made once per test session (conftest.session_folder)
    and shared with tests/test_reliability_fingerprints.py. Copy it (copy_root), never change it."""
    def build(root: Path) -> None:
        make_weights_dir(root / "weights", tokenizer_dir)
        copy_data_root(data_root, root / "data")
        run_cli_here(args_for(root / "weights"), root / "results", env=env_for(root / "data"))
    return session_folder("fingerprinted-done", build)


def fingerprinted_forced(session_folder, data_root: Path, tokenizer_dir: Path) -> Path:
    """fingerprinted_done's run after one byte of its training file changed (``flip_byte``, size and mtime
    kept) and the same command with force=true: made once per session, shared like fingerprinted_done."""
    done = fingerprinted_done(session_folder, data_root, tokenizer_dir)

    def build(root: Path) -> None:
        copy_root(done, root)
        flip_byte(root / "data" / "e2e" / "trainset.csv")
        run_cli_here([*args_for(root / "weights"), "force=true"], root / "results", env=env_for(root / "data"))
    return session_folder("fingerprinted-forced", build)


def copy_root(src: Path, dest: Path) -> Path:
    """Copy a root of fingerprinted_done/-forced into ``dest``; its record.json names the copy's folders.
    Returns the copy's run directory."""
    shutil.copytree(src, dest, dirs_exist_ok=True)
    (run_dir,) = run_dirs(dest / "results")
    record = run_dir / "record.json"
    record.write_text(record.read_text().replace(str(src), str(dest)))
    return run_dir


def verify(*dirs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lodabench.cli", "verify", *map(str, dirs)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------- hashing
def test_sha256_file_streams_large_files(tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(fp.CHUNK * 2 + 17)  # three chunks, the last partial
    path.write_bytes(data)
    assert fp.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_same_size_same_mtime_replacement_is_seen(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("mr,ref\n" * 1000)
    entry = {"base": str(tmp_path), "sha256": fp.hash_files(tmp_path, ["train.csv"])}
    flip_byte(path)
    (finding,) = fp.check_entry("data", entry)
    assert finding.status == "changed" and finding.old != finding.new
    assert finding.line().startswith("data train.csv: changed (sha256 ") and finding.old[:12] in finding.line()


def test_weights_folder_scan_sees_an_added_weights_file_not_a_readme(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"old weights")
    (tmp_path / "config.json").write_text("{}")
    entry = fp.folder_entry(tmp_path, fp.WEIGHT_PATTERNS)
    assert sorted(entry["sha256"]) == ["config.json", "pytorch_model.bin"]
    (tmp_path / "README.md").write_text("notes")
    assert {f.status for f in fp.check_entry("weights", entry)} == {"ok"}
    (tmp_path / "model.safetensors").write_bytes(b"what from_pretrained now loads first")
    added = [f for f in fp.check_entry("weights", entry) if f.status == "added"]
    assert [f.name for f in added] == ["model.safetensors"]


def test_missing_file_and_single_file_location(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"gguf")
    entry = fp.folder_entry(gguf, fp.WEIGHT_PATTERNS)
    assert entry["base"] == str(tmp_path) and list(entry["sha256"]) == ["m.gguf"]
    gguf.unlink()
    assert [f.status for f in fp.check_entry("weights", entry)] == ["missing"]


def test_malformed_sha256_block_names_the_key():
    with pytest.raises(ConfigError, match=r"inputs\.data\.sha256 is not a mapping"):
        fp.check_inputs({"data": {"base": "/", "sha256": ["a", "b"]}}, ["data"])
    with pytest.raises(ConfigError, match="inputs is list"):
        fp.check_inputs([1, 2], ["data"])
    with pytest.raises(ConfigError, match=r"inputs\.weights is str, not an object"):
        fp.check_inputs({"weights": "model.safetensors"}, ["weights"])
    with pytest.raises(ConfigError, match=r"inputs\.plugins is dict, not a list"):
        fp.check_inputs({"plugins": {}}, ["plugins"])
    with pytest.raises(ConfigError, match=r"inputs\.data\.base is None"):
        fp.check_inputs({"data": {"sha256": {"a.csv": "00"}}}, ["data"])
    (finding,) = fp.check_inputs({"fingerprinted": True}, ["data"])  # a task that records nothing
    assert finding.status == "not fingerprinted"


# ----------------------------------------------------------------------------- what a run read
def _cfg(data_root=None) -> OmegaConf:
    return OmegaConf.create({"paths": {"data_root": data_root}, "data": {"name": "e2e"},
                             "model": {"pretrained": "unused"}})


@pytest.mark.parametrize("configured, env, expected", [
    ("SET", None, "paths.data_root"),
    (None, "SET", f"${DATA_ROOT_ENV}"),
    (None, None, "../shared/data beside the repository"),
])
def test_data_inputs_say_which_root_was_used(tmp_path, monkeypatch, configured, env, expected):
    (tmp_path / "e2e").mkdir()
    (tmp_path / "e2e" / "trainset.csv").write_text("mr,ref\n")
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    if env:
        monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    task = SimpleNamespace(inputs={"source": "data_root", "data_root": str(tmp_path), "files": ["e2e/trainset.csv"]})
    inputs = fp.data_inputs(str(tmp_path) if configured else None, task)
    assert inputs is task.inputs  # the task's own dict: files read later still reach the record
    assert inputs["root_from"] == expected and inputs["data_root"] == str(tmp_path)
    assert inputs["sha256"] == {"e2e/trainset.csv": hashlib.sha256(b"mr,ref\n").hexdigest()}


def test_hub_data_hashes_the_parquet_files_read(tmp_path):
    (tmp_path / "default" / "train").mkdir(parents=True)
    (tmp_path / "default" / "train" / "0000.parquet").write_bytes(b"PAR1")
    task = SimpleNamespace(inputs={"source": "hub", "hub_id": "tuetschek/e2e_nlg", "resolved_revision": "abc",
                                   "local_dir": str(tmp_path), "files": ["default/train/0000.parquet"]})
    inputs = fp.data_inputs(None, task)
    assert inputs["root_from"].startswith("hub") and inputs["resolved_revision"] == "abc"
    assert inputs["sha256"]["default/train/0000.parquet"] == hashlib.sha256(b"PAR1").hexdigest()


def test_a_file_read_after_fingerprinting_is_not_called_ok(tmp_path):
    (tmp_path / "a.csv").write_text("a")
    entry = {"source": "data_root", "base": str(tmp_path), "files": ["a.csv", "b.csv"],
             "sha256": fp.hash_files(tmp_path, ["a.csv"])}
    statuses = {f.name: f.status for f in fp.check_inputs({"data": entry}, ["data"])}
    assert statuses == {"a.csv": "ok", "b.csv": "not fingerprinted"}


def test_plugins_are_fingerprinted_and_verified(tmp_path, monkeypatch):
    module_file = tmp_path / "fp_plugin_mod.py"
    module_file.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(plugins._loaded, "fp_plugin_mod", "LODABENCH_PLUGINS=fp_plugin_mod")
    (entry,) = fp.plugin_inputs()
    assert entry["module"] == "fp_plugin_mod" and entry["named_by"].startswith("LODABENCH_PLUGINS")
    assert entry["sha256"] == {"fp_plugin_mod.py": hashlib.sha256(b"X = 1\n").hexdigest()}
    module_file.write_text("X = 2\n")
    (finding,) = fp.check_inputs({"plugins": [entry]}, ["plugins"])
    assert finding.part == "plugins[fp_plugin_mod]" and finding.status == "changed"
    sys.modules.pop("fp_plugin_mod", None)


# ----------------------------------------------------------------------------- skip and resume
def _data_record(run_dir: Path, root: Path) -> SimpleNamespace:
    data = {"source": "data_root", "data_root": str(root), "base": str(root), "files": ["t.csv"],
            "sha256": fp.hash_files(root, ["t.csv"])}
    return SimpleNamespace(run_dir=run_dir, data={"inputs": {"fingerprinted": True, "data": data}})


def test_skip_rehashes_where_this_launch_reads(tmp_path):
    old, same, other = (tmp_path / n for n in ("old", "same", "other"))
    for folder, text in ((old, "rows"), (same, "rows"), (other, "rowz")):
        folder.mkdir()
        (folder / "t.csv").write_text(text)
    record = _data_record(tmp_path / "run", old)
    assert fp.stale_inputs(record, _cfg(str(old))) is None
    assert fp.stale_inputs(record, _cfg(str(same))) is None  # a byte-identical copy elsewhere: same data
    message = fp.stale_inputs(record, _cfg(str(other)))
    assert "data t.csv: changed (sha256 " in message and "force=true re-runs it" in message
    assert str(tmp_path / "run") in message


def test_skip_of_a_record_before_fingerprints_is_not_refused(tmp_path):
    record = SimpleNamespace(run_dir=tmp_path, data={"inputs": {"data": {"files": ["t.csv"]}}})
    assert fp.stale_inputs(record, _cfg()) is None


def _attempts_record(first: dict, second: dict, start: str = "resume") -> SimpleNamespace:
    return SimpleNamespace(run_dir=Path("/runs/x"), attempts=[
        {"n": 1, "start": "step 0", "inputs": first}, {"n": 2, "start": start, "inputs": second}])


def _inputs(digest: str, weights: dict | None = None) -> dict:
    return {"fingerprinted": True, "data": {"sha256": {"e2e/trainset.csv": digest}}, "weights": weights or {}}


def test_resume_from_other_data_is_refused():
    with pytest.raises(ConfigError, match=r"data e2e/trainset.csv sha256 aaaa -> bbbb.*force=true"):
        fp.check_resume(_attempts_record(_inputs("aaaa"), _inputs("bbbb")), _inputs("bbbb"))
    fp.check_resume(_attempts_record(_inputs("aaaa"), _inputs("aaaa")), _inputs("aaaa"))
    fp.check_resume(_attempts_record(_inputs("aaaa"), _inputs("bbbb"), "step 0"), _inputs("bbbb"))  # fresh


def test_resume_with_an_added_weights_file_is_refused():
    old = _inputs("a", {"patterns": ["*.bin"], "sha256": {"pytorch_model.bin": "w"}})
    new = _inputs("a", {"patterns": ["*.bin"], "sha256": {"pytorch_model.bin": "w", "extra.bin": "e"}})
    with pytest.raises(ConfigError, match=r"weights extra.bin sha256 none -> e"):
        fp.check_resume(_attempts_record(old, new), new)


def test_resume_of_a_run_before_fingerprints_goes_on():
    fp.check_resume(_attempts_record({"data": {}}, _inputs("b")), _inputs("b"))


# ----------------------------------------------------------------------------- warm-start files
@pytest.mark.parametrize("prefix", ["", "loralib:"])
def test_a_warm_start_file_is_fingerprinted_and_a_replacement_is_seen(tmp_path, prefix):
    ckpt = tmp_path / ("trainable.safetensors" if not prefix else "gpt2_md_lora_e2e.pt")
    ckpt.write_bytes(b"adapters v1")
    entry = fp.init_inputs(prefix + str(ckpt))["init"]
    assert entry["init_from"] == prefix + str(ckpt)
    assert entry["sha256"] == {ckpt.name: hashlib.sha256(b"adapters v1").hexdigest()}
    record = SimpleNamespace(run_dir=tmp_path / "run", data={"inputs": {"fingerprinted": True, "init": entry}})
    assert fp.stale_inputs(record, _cfg()) is None
    ckpt.write_bytes(b"adapters v2")
    assert f"init {ckpt.name}: changed (sha256 " in fp.stale_inputs(record, _cfg())


def test_no_warm_start_records_no_init_part_and_old_records_still_verify():
    assert fp.init_inputs(None) == {}
    assert fp.parts_recorded({"data": {}}, fp.VERIFIED_PARTS) == fp.VERIFIED_PARTS
    assert fp.parts_recorded({"init": {"sha256": {}}}, ("data",)) == ("data", "init")


def test_resume_from_another_warm_start_file_is_refused():
    first = {**_inputs("a"), "init": {"sha256": {"gpt2_md_lora_e2e.pt": "1111"}}}
    second = {**_inputs("a"), "init": {"sha256": {"gpt2_md_lora_e2e.pt": "2222"}}}
    with pytest.raises(ConfigError, match=r"init gpt2_md_lora_e2e.pt sha256 1111 -> 2222"):
        fp.check_resume(_attempts_record(first, second), second)


# ----------------------------------------------------------------------------- verify (no run)
def test_verify_not_a_run_dir_is_bad_usage(tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path)]) == 2
    assert "no record.json" in capsys.readouterr().err


def test_verify_legacy_damaged_and_malformed_records(tmp_path, capsys):
    legacy, damaged, malformed = (tmp_path / n for n in ("legacy", "damaged", "malformed"))
    for d in (legacy, damaged, malformed):
        d.mkdir()
    (legacy / "record.json").write_text(json.dumps({"status": "complete", "inputs": {"data": {"files": []}}}))
    (damaged / "record.json").write_text('{"status": ')
    (malformed / "record.json").write_text(json.dumps({"inputs": {"fingerprinted": True, "data": {"sha256": 3}}}))
    for run_dir, says in ((legacy, "made before fingerprints"), (damaged, "is damaged"),
                          (malformed, "inputs.data.sha256 is not a mapping")):
        assert cli.main(["verify", str(run_dir)]) == 1
        assert says in capsys.readouterr().out


# ----------------------------------------------------------------------------- the tiny run
@pytest.mark.slow
def test_tiny_run_records_sha256_and_a_changed_training_file_is_not_answered(
        tmp_path, session_folder, data_root, gpt2_tokenizer_dir):
    # the session's tiny run (fingerprinted_done: a fresh CLI run from scratch), in a copy of its own
    root = tmp_path / "root"
    run_dir = copy_root(fingerprinted_done(session_folder, data_root, gpt2_tokenizer_dir), root)
    weights, data, results = root / "weights", root / "data", root / "results"
    inputs = record_of(run_dir)["inputs"]
    assert inputs["fingerprinted"] is True and inputs["data"]["root_from"] == f"${DATA_ROOT_ENV}"
    assert inputs["data"]["data_root"] == str(data.resolve())
    assert inputs["data"]["sha256"]["e2e/trainset.csv"] == fp.sha256_file(data / "e2e" / "trainset.csv")
    assert inputs["weights"]["sha256"]["model.safetensors"] == fp.sha256_file(weights / "model.safetensors")
    assert inputs["tokenizer"]["sha256"]["vocab.json"] == fp.sha256_file(weights / "vocab.json")
    assert verify(run_dir).returncode == 0
    flip_byte(data / "e2e" / "trainset.csv")
    before = (run_dir / "record.json").read_bytes()
    proc = run_cli_here(args_for(weights), results, env=env_for(data), check=False)
    assert proc.returncode == 2 and "skip (complete)" not in proc.stdout, proc.stdout[-1500:]
    assert "e2e/trainset.csv: changed" in proc.stderr and "force=true" in proc.stderr
    assert (run_dir / "record.json").read_bytes() == before  # a refused launch writes nothing
    checked = verify(run_dir)
    assert checked.returncode == 1 and "data e2e/trainset.csv: changed" in checked.stdout
    # force=true on the changed data: the session's run of exactly these steps (fingerprinted_forced: the
    # same complete run, the same flip_byte, then the command with force=true), in a copy of its own. The
    # refused launch above wrote nothing (asserted), so the force run starts from the same files.
    forced = tmp_path / "forced"
    run_dir = copy_root(fingerprinted_forced(session_folder, data_root, gpt2_tokenizer_dir), forced)
    train = forced / "data" / "e2e" / "trainset.csv"
    assert train.read_bytes() == (data / "e2e" / "trainset.csv").read_bytes()  # the same change
    rec = record_of(run_dir)
    assert rec["inputs"]["data"]["sha256"]["e2e/trainset.csv"] == fp.sha256_file(train)
    assert [a["outcome"] for a in rec["attempts"]] == ["complete", "complete"] and verify(run_dir).returncode == 0
