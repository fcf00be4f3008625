"""The papers' data without a data root (lodabench.tasks.hub): hub-layout parquet folders, downloads
through a stand-in for huggingface_hub.snapshot_download, and whole runs in a clone with nothing beside it.

The folders are built here, from the first rows of ../shared/data when it is present (so the hub
path is checked against the official files' own rows) and from a few synthetic rows otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lodabench import paths
from lodabench.tasks import get_task
from lodabench.tasks import hub as hub_mod
from lodabench.tasks.dart import hub_entries, read_dart_json
from lodabench.tasks.e2e import read_e2e_csv, to_pairs
from lodabench.errors import DataError

N_ROWS = 12
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHARED = paths.shared_dir()
SHARED_DATA = SHARED / "data" if SHARED is not None and (SHARED / "data").is_dir() else None
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ----------------------------------------------------------------------------------------------- rows
def e2e_rows(split_file: str) -> list[tuple[str, str]]:
    if SHARED_DATA is not None:
        return read_e2e_csv(SHARED_DATA / "e2e" / split_file)[:N_ROWS]
    return [(f"name[Place {i}], eatType[pub], priceRange[£20-25]", f"Place {i} is a pub. It isn't cheap.")
            for i in range(N_ROWS)]


def dart_entries() -> list[dict]:
    if SHARED_DATA is not None:  # the staged files have no train split: dev rows stand in for every split
        return read_dart_json(SHARED_DATA / "dart" / "dart-v1.1.1-full-dev.json")[:N_ROWS]
    return [{"tripleset": [[f"Place {i}", "[TITLE]", "pub"], [f"Place {i}", "area", "riverside"]],
             "annotations": [{"source": "WebNLG", "text": f"Place {i} is a pub by the river."},
                             {"source": "WebNLG", "text": f"By the river: Place {i}."}]} for i in range(N_ROWS)]


def dart_row(entry: dict) -> dict:
    """A DART entry as the hub's parquet has it (annotations: a struct of lists)."""
    anns = entry["annotations"]
    return {"tripleset": entry["tripleset"], "subtree_was_extended": entry.get("subtree_was_extended", False),
            "annotations": {"source": [a["source"] for a in anns], "text": [a["text"] for a in anns]}}


HUB_SPLITS = {"train": "trainset.csv", "validation": "devset.csv", "test": "testset_w_refs.csv"}


def make_e2e_dir(root: Path) -> Path:
    for split, name in HUB_SPLITS.items():
        write_parquet(root / "default" / split / "0000.parquet",
                      [{"meaning_representation": mr, "human_reference": ref} for mr, ref in e2e_rows(name)])
    return root


def make_dart_dir(root: Path) -> Path:
    for split in HUB_SPLITS:
        write_parquet(root / "default" / split / "0000.parquet", [dart_row(e) for e in dart_entries()])
    return root


def make_glue_dir(root: Path) -> Path:
    """sst2 as nyu-mll/glue's main branch has it, mnli as its parquet export (refs/convert/parquet)."""
    sst2 = [{"sentence": f"a {'good' if i % 2 else 'bad'} film {i}", "label": i % 2, "idx": i} for i in range(N_ROWS)]
    for split in ("train", "validation"):
        write_parquet(root / "sst2" / f"{split}-00000-of-00001.parquet", sst2)
    mnli = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i} for i in range(N_ROWS)]
    for split in ("train", "validation_matched", "validation_mismatched"):
        write_parquet(root / "mnli" / split / "0000.parquet", mnli)
    return root


@pytest.fixture
def no_data_root(monkeypatch, tmp_path):
    """A machine with no data root: LODABENCH_DATA_ROOT unset, no ../shared, an empty cache."""
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    monkeypatch.setattr(paths, "shared_dir", lambda: None)
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    assert paths.resolve_data_root(None) is None


# --------------------------------------------------------------------------- (a) local hub_id folders
def test_e2e_reads_a_local_parquet_export_as_the_csv_rows(no_data_root, tmp_path):
    mirror = make_e2e_dir(tmp_path / "e2e_mirror")
    task = get_task({"name": "e2e", "text": "lora", "hub_id": str(mirror)}, paths.resolve_data_root(None))
    for split, name in (("train", "trainset.csv"), ("dev", "devset.csv"), ("test", "testset_w_refs.csv")):
        # the same rows through the same mapping as the official CSV (text=lora made by e2e_lora_text)
        assert task.train_pairs(split) == list(to_pairs(e2e_rows(name), "lora", "lora", split))
    assert task.inputs == {"source": "hub", "hub_id": str(mirror.resolve()),
                           "requested_revision": "refs/convert/parquet", "resolved_revision": None,
                           "local_dir": str(mirror.resolve()),
                           "files": ["default/train/0000.parquet", "default/validation/0000.parquet",
                                     "default/test/0000.parquet"]}
    json.dumps(task.inputs)


def test_local_mirror_made_by_hf_download_records_its_commit(no_data_root, tmp_path):
    mirror = make_e2e_dir(tmp_path / "m")
    meta = mirror / ".cache" / "huggingface" / "download" / "default" / "test" / "0000.parquet.metadata"
    meta.parent.mkdir(parents=True)
    meta.write_text(f"{FAKE_COMMIT}\netag\n1700000000.0\n")  # huggingface_hub._local_folder's format
    task = get_task({"name": "e2e", "hub_id": str(mirror)}, None)
    task.eval_items("test")
    assert task.inputs["resolved_revision"] == FAKE_COMMIT
    task.train_pairs("train")  # a file without metadata: the commit of the whole set is unknown
    assert task.inputs["resolved_revision"] is None


def test_e2e_hub_rows_in_two_shards_keep_their_order(no_data_root, tmp_path):
    rows = [{"meaning_representation": mr, "human_reference": ref} for mr, ref in e2e_rows("devset.csv")]
    mirror = make_e2e_dir(tmp_path / "m")
    (mirror / "default" / "validation" / "0000.parquet").unlink()
    write_parquet(mirror / "default" / "validation" / "0000.parquet", rows[:5])
    write_parquet(mirror / "default" / "validation" / "0001.parquet", rows[5:])
    task = get_task({"name": "e2e", "text": "official", "hub_id": str(mirror)}, None)
    assert [p.target for p in task.train_pairs("dev")] == [r["human_reference"].strip() for r in rows]


def test_dart_gives_one_entry_per_hub_row(no_data_root, tmp_path):
    mirror = make_dart_dir(tmp_path / "dart_mirror")
    task = get_task({"name": "dart", "hub_id": str(mirror)}, None)
    entries = dart_entries()
    source = hub_mod.DataSource(None, str(mirror), "refs/convert/parquet", "default")
    # struct of lists -> the JSON files' list of objects (subtree_was_extended is not read)
    assert hub_entries(source, "test") == [{k: e[k] for k in ("tripleset", "annotations")} for e in entries]
    assert len(task.train_pairs("train")) == sum(len(e["annotations"]) for e in entries)
    assert task.train_pairs("train")[0].source == " | ".join(
        f"{s} : {p.lower()} : {o}" for s, p, o in entries[0]["tripleset"])
    assert task.eval_items("test")
    assert task.inputs["files"] == ["default/train/0000.parquet", "default/test/0000.parquet"]


def test_glue_reads_both_layouts_of_nyu_mll_glue(no_data_root, tmp_path):
    mirror = make_glue_dir(tmp_path / "glue_mirror")
    sst2 = get_task({"name": "sst2", "hub_id": str(mirror)}, None)
    rows = sst2.rows("dev")
    assert (rows[1].text_a, rows[1].text_b, rows[1].label) == ("a good film 1", None, 1)
    assert sst2.inputs["files"] == ["sst2/validation-00000-of-00001.parquet"]
    assert sst2.inputs["requested_revision"] == "main"
    mnli = get_task({"name": "mnli", "hub_id": str(mirror)}, None)
    assert [r.label for r in mnli.rows("dev_mismatched")[:3]] == [0, 1, 2]
    assert mnli.rows("dev_matched")[2].text_b == "h2"
    assert mnli.inputs["files"] == ["mnli/validation_mismatched/0000.parquet", "mnli/validation_matched/0000.parquet"]


def test_data_root_inputs_name_the_files_read(tmp_path):
    root = tmp_path / "root"
    (root / "e2e").mkdir(parents=True)
    (root / "e2e" / "devset.csv").write_text('mr,ref\n"name[A], eatType[pub]",A is a pub.\n', encoding="utf-8")
    task = get_task({"name": "e2e"}, root)
    assert len(task.train_pairs("dev")) == 1
    assert task.inputs == {"source": "data_root", "data_root": str(root.resolve()), "files": ["e2e/devset.csv"]}


# ------------------------------------------------------------------------------ (b) clear errors
def test_a_missing_split_file_names_it_and_the_layout(no_data_root, tmp_path):
    mirror = make_e2e_dir(tmp_path / "m")
    shutil.rmtree(mirror / "default" / "validation")
    task = get_task({"name": "e2e", "hub_id": str(mirror)}, None)
    with pytest.raises(DataError) as err:
        task.train_pairs("dev")
    msg = str(err.value)
    assert "'validation'" in msg and str(mirror / "default" / "validation" / "*.parquet") in msg
    assert "refs/convert/parquet" in msg and "hf download tuetschek/e2e_nlg --repo-type dataset" in msg


def test_a_wrong_dataset_names_the_missing_column(no_data_root, tmp_path):
    mirror = make_dart_dir(tmp_path / "dart")  # DART's files given as E2E's
    task = get_task({"name": "e2e", "hub_id": str(mirror)}, None)
    with pytest.raises(DataError, match=r"0000\.parquet: no column\(s\) \['meaning_representation', "
                                        r"'human_reference'\].*data\.hub_id"):
        task.train_pairs("train")


def test_a_hub_id_written_as_a_missing_path_is_refused_at_build(no_data_root, tmp_path):
    with pytest.raises(DataError, match=r"data\.hub_id='\./nowhere' is written as a path .* not a directory"):
        get_task({"name": "dart", "hub_id": "./nowhere"}, None)


def test_an_unlabelled_glue_split_is_refused(no_data_root, tmp_path):
    mirror = make_glue_dir(tmp_path / "g")
    write_parquet(mirror / "sst2" / "validation-00000-of-00001.parquet", [{"sentence": "x", "label": -1, "idx": 0}])
    with pytest.raises(DataError, match=r"sst2/validation row 0: label -1 is not a class id of sst2"):
        get_task({"name": "sst2", "hub_id": str(mirror)}, None).rows("dev")


# -------------------------------------------------------------- (c) download, through a stand-in
class FakeHub:
    """huggingface_hub.snapshot_download over a local folder, with the cache layout it writes:
    ``<cache_dir>/datasets--owner--name/{refs/<revision>, snapshots/<commit>/<files>}``."""

    def __init__(self, origin: Path, fail: bool = False):
        self.origin, self.fail, self.network_calls = origin, fail, []

    def __call__(self, repo_id, repo_type, revision, allow_patterns, cache_dir, local_files_only=False):
        from huggingface_hub.errors import LocalEntryNotFoundError

        assert repo_type == "dataset"
        storage = Path(cache_dir) / f"datasets--{repo_id.replace('/', '--')}"
        if local_files_only:
            ref = storage / "refs" / revision
            commit = revision if revision == FAKE_COMMIT else (ref.read_text() if ref.is_file() else None)
            if commit is None or not (storage / "snapshots" / commit).is_dir():
                raise LocalEntryNotFoundError("not in the cache")
            return str(storage / "snapshots" / commit)
        self.network_calls.append((repo_id, revision, tuple(allow_patterns)))
        if self.fail:
            raise ConnectionError("hub unreachable")
        snapshot = storage / "snapshots" / FAKE_COMMIT
        for pattern in allow_patterns:
            for src in self.origin.glob(pattern):
                (snapshot / src.relative_to(self.origin)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, snapshot / src.relative_to(self.origin))
        if revision != FAKE_COMMIT:
            (storage / "refs" / revision).parent.mkdir(parents=True, exist_ok=True)
            (storage / "refs" / revision).write_text(FAKE_COMMIT)
        return str(snapshot)


def test_download_records_the_commit_and_a_second_run_reads_the_cache(no_data_root, tmp_path, monkeypatch):
    import huggingface_hub

    fake = FakeHub(make_e2e_dir(tmp_path / "origin"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    task = get_task({"name": "e2e", "text": "lora"}, None)
    task.train_pairs("train")
    task.eval_items("test")
    snapshot = tmp_path / "cache" / "hub" / "datasets--tuetschek--e2e_nlg" / "snapshots" / FAKE_COMMIT
    assert task.inputs == {"source": "hub", "hub_id": "tuetschek/e2e_nlg", "requested_revision": "refs/convert/parquet",
                           "resolved_revision": FAKE_COMMIT, "local_dir": str(snapshot),
                           "files": ["default/train/0000.parquet", "default/test/0000.parquet"]}
    # the second split is fetched at the commit the first resolved to, only its own files
    assert fake.network_calls == [
        ("tuetschek/e2e_nlg", "refs/convert/parquet", ("default/train/*.parquet", "default/train-*.parquet")),
        ("tuetschek/e2e_nlg", FAKE_COMMIT, ("default/test/*.parquet", "default/test-*.parquet"))]
    again = get_task({"name": "e2e", "text": "lora"}, None)  # a later run: served from the cache
    assert again.train_pairs("train") == task.train_pairs("train")
    assert len(fake.network_calls) == 2 and again.inputs["resolved_revision"] == FAKE_COMMIT


def test_a_failed_download_says_how_to_mirror(no_data_root, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeHub(tmp_path, fail=True))
    with pytest.raises(DataError) as err:
        get_task({"name": "dart"}, None).train_pairs("train")
    msg = str(err.value)
    assert "'Yale-LILY/dart' at revision 'refs/convert/parquet'" in msg and "hub unreachable" in msg
    assert ("hf download Yale-LILY/dart --repo-type dataset --revision refs/convert/parquet --local-dir DIR" in msg
            and "data.hub_id=DIR" in msg and "LODABENCH_DATA_ROOT" in msg)


def test_cache_root_follows_lodabench_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "a"))
    assert paths.cache_root() == (tmp_path / "a").resolve()
    monkeypatch.delenv(paths.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == (tmp_path / "xdg" / "lodabench").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert paths.cache_root() == (Path.home() / ".cache" / "lodabench").resolve()


# ------------------------------------------------- (d) whole runs in a clone with nothing beside it
def _tokenizer_dir() -> Path:
    tok = SHARED / "tokenizers" / "gpt2" if SHARED is not None else None
    if tok is None or not (tok / "vocab.json").is_file():
        if IN_CI:
            pytest.fail("../shared/tokenizers/gpt2 missing under CI=true")
        pytest.skip("../shared/tokenizers/gpt2 not found: tiny-gpt2's tokenizer (no network here)")
    return tok


def _clone(tmp_path: Path) -> Path:
    """src/, conf/ and the lock copied into a folder with no ../shared beside it (a fresh clone's view)."""
    clone = tmp_path / "box" / "lodabench"
    for name in ("src", "conf"):
        shutil.copytree(paths.REPO_ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.lock", "pyproject.toml"):
        if (paths.REPO_ROOT / name).is_file():
            shutil.copy(paths.REPO_ROOT / name, clone / name)
    return clone


@pytest.mark.slow  # a whole CLI run per case from a copied clone
@pytest.mark.parametrize("experiment, make_dir", [("e2e_loda", make_e2e_dir), ("dart_loda", make_dart_dir)])
def test_paper_experiment_runs_from_a_local_hub_folder_in_a_bare_clone(tmp_path, experiment, make_dir):
    tokenizer, clone = _tokenizer_dir(), _clone(tmp_path)
    mirror, results = make_dir(tmp_path / "mirror"), tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in (paths.DATA_ROOT_ENV, "LODABENCH_RESULTS_DIR")}
    env.update(PYTHONPATH=str(clone / "src"), LODABENCH_GPT2_TOKENIZER=str(tokenizer), HF_HUB_OFFLINE="1",
               LODABENCH_CACHE=str(tmp_path / "cache"), WANDB_MODE="offline")
    args = [f"experiment={experiment}", "model=tiny-gpt2", "trainer.max_steps=2", "trainer.max_dev_batches=2",
            "data.max_train_examples=16", "data.max_eval_items=8", "decoding.max_new_tokens=8",
            "trainer.progress=false", "decoding.progress=false", f"data.hub_id={mirror}",
            f"paths.results_dir={results}"]
    where = subprocess.run([sys.executable, "-c", "from lodabench import paths as p; "
                            "print(p.REPO_ROOT, p.shared_dir(), p.resolve_data_root(None))"],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert where.stdout.split() == [str(clone), "None", "None"]  # the clone's code, nothing beside it
    proc = subprocess.run([sys.executable, "-m", "lodabench", *args], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    records = list((results / "runs").rglob("record.json"))
    assert len(records) == 1, records
    record = json.loads(records[0].read_text())
    assert record["status"] == "complete"
    data = record.get("inputs", {}).get("data")  # written by lodabench.run.spine (record.json's inputs block)
    assert data is not None, f"record.json has no inputs.data: keys {sorted(record)}"
    assert data["source"] == "hub" and data["hub_id"] == str(mirror.resolve())
    assert data["requested_revision"] == "refs/convert/parquet" and "default/test/0000.parquet" in data["files"]
