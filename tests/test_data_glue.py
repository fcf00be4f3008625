"""GLUE tasks: row counts and label balance from shared/data/MANIFEST.md, format quirks, errors,
the CondLoRA holdout split and the subsample helper."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lodabench.tasks import Row, get_task, holdout_split, subsample
from lodabench.tasks.glue import SPECS, read_glue_tsv
from lodabench.errors import ConfigError, DataError
from lodabench.scoring.glue import glue_metrics
from lodabench.tasks.registry import task_spec

# (task, split, rows) from the MANIFEST GLUE table
MANIFEST_ROWS = [
    ("cola", "train", 8551), ("cola", "dev", 1043),
    ("sst2", "train", 67349), ("sst2", "dev", 872),
    ("mrpc", "train", 3668), ("mrpc", "dev", 408),
    ("stsb", "train", 5749), ("stsb", "dev", 1500),
    ("rte", "train", 2490), ("rte", "dev", 277),
    ("qnli", "dev", 5463),
]


@pytest.mark.parametrize("name, split, n", MANIFEST_ROWS)
def test_row_counts_match_manifest(data_root, name, split, n):
    rows = get_task({"name": name}, data_root).rows(split)
    assert len(rows) == n
    assert all(isinstance(r, Row) and r.text_a for r in rows)


@pytest.mark.parametrize(
    "name, split, counts",
    [  # label balance stated in the MANIFEST (label ids in the nyu-mll/glue order)
        ("sst2", "train", {1: 37569, 0: 29780}),
        ("sst2", "dev", {1: 444, 0: 428}),
        ("rte", "train", {0: 1249, 1: 1241}),   # 0 = entailment
        ("rte", "dev", {0: 146, 1: 131}),
    ],
)
def test_label_balance_matches_manifest(data_root, name, split, counts):
    rows = get_task({"name": name}, data_root).rows(split)
    assert Counter(r.label for r in rows) == counts


def test_task_metadata(data_root):
    mnli = get_task({"name": "mnli"}, data_root)
    assert mnli.label_names == ("entailment", "neutral", "contradiction")
    assert mnli.splits == ("train", "dev_matched", "dev_mismatched")
    assert mnli.test_splits == ("dev_matched", "dev_mismatched")
    stsb = get_task({"name": "stsb"}, data_root)
    assert (stsb.is_regression, stsb.num_labels, stsb.primary_metric) == (True, 1, "pearson")
    assert stsb.metric_names == ("pearson", "spearman")
    cola = get_task({"name": "cola"}, data_root)
    # "mcc" is the key scoring.glue returns; "matthews_correlation" left CoLA's selection objective None
    assert (cola.num_labels, cola.primary_metric, cola.test_splits) == (2, "mcc", ("dev",))
    assert get_task({"name": "qnli"}, data_root).label_names == ("entailment", "not_entailment")


@pytest.mark.parametrize("name", list(SPECS))
def test_declared_metrics_are_keys_glue_metrics_returns(name):
    """Each task's declared metrics, primary and selection metric are keys of what its scorer returns."""
    declared = task_spec(name).metrics
    regression = SPECS[name].label_names is None
    preds, labels = ([0.5, 2.0, 4.5, 3.0], [1.0, 2.5, 4.0, 2.0]) if regression else ([0, 1, 1, 0], [0, 1, 0, 0])
    got = glue_metrics(name, preds, labels)
    assert set(declared.names) <= set(got)
    assert {declared.primary_metric, declared.selection_metric} <= set(got)


def test_format_quirks(data_root):
    # CoLA: no header, the first line is data
    cola = get_task({"name": "cola"}, data_root).rows("train")
    assert cola[0] == Row("Our friends won't buy this analysis, let alone the next one we propose.", None, 1)
    # MRPC: UTF-8 BOM before the header; bare quotes are text (QUOTE_NONE)
    mrpc = get_task({"name": "mrpc"}, data_root).rows("train")
    assert mrpc[0].text_a.startswith('Amrozi accused his brother , whom he called " the witness "')
    assert mrpc[0].label == 1 and mrpc[0].text_b is not None
    # STS-B: float scores in [0, 5]
    stsb = get_task({"name": "stsb"}, data_root).rows("dev")
    assert stsb[0] == Row("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0)
    assert all(isinstance(r.label, float) and 0.0 <= r.label <= 5.0 for r in stsb)
    # QNLI: index column skipped, text labels mapped
    qnli = get_task({"name": "qnli"}, data_root).rows("dev")
    assert qnli[0].text_a == "What came into force after the new constitution was herald?"
    assert qnli[0].label == 0 and {r.label for r in qnli} == {0, 1}


def test_missing_file_names_path(data_root):
    with pytest.raises(DataError) as err:
        get_task({"name": "qnli"}, data_root).rows("train")
    assert str(data_root / "glue" / "QNLI" / "train.tsv") in str(err.value)
    assert "download_glue_data.py" in str(err.value) and "LODABENCH_DATA_ROOT" in str(err.value)


# --- fixtures written to tmp_path -----------------------------------------------------------

MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                     "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER.replace("label1\t", "label1\tlabel2\tlabel3\tlabel4\tlabel5\t")


def _write(root: Path, folder: str, name: str, lines: list[str]) -> Path:
    path = root / "glue" / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_mnli_train_and_dev_layouts(tmp_path):
    meta = "\t".join(["p"] * 7)  # promptID .. sentence2_parse
    _write(tmp_path, "MNLI", "train.tsv", [
        MNLI_TRAIN_HEADER,
        f"0\t{meta}\tA man sleeps.\tA person rests.\tentailment\tentailment",
        f"1\t{meta}\tA man sleeps.\tA man runs.\tcontradiction\tcontradiction",
    ])
    _write(tmp_path, "MNLI", "dev_matched.tsv", [
        MNLI_DEV_HEADER,
        f"0\t{meta}\tIt rains.\tIt is wet.\tneutral\tneutral\tneutral\tneutral\tneutral\tneutral",
    ])
    task = get_task({"name": "mnli"}, tmp_path)
    assert task.rows("train") == [Row("A man sleeps.", "A person rests.", 0),
                                  Row("A man sleeps.", "A man runs.", 2)]
    assert task.rows("dev_matched") == [Row("It rains.", "It is wet.", 1)]
    with pytest.raises(DataError, match="dev_mismatched.tsv"):
        task.rows("dev_mismatched")


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = _write(tmp_path, "RTE", "train.tsv", [
        "index\tsentence1\tsentence2\tlabel",
        "0\tA.\tB.\tentailment",
        "1\tA.\tB.\tnot_entailment",
        "2\tA. with a stray tab\there\tB.\tentailment",
    ])
    with pytest.raises(DataError, match=rf"{path}: line 4: 5 column\(s\), expected 4"):
        read_glue_tsv(SPECS["rte"], path)


def test_headerless_cola_column_count(tmp_path):
    path = _write(tmp_path, "CoLA", "dev.tsv", ["gj04\t1\t\tGood.", "gj04\t0\t*"])
    with pytest.raises(DataError, match=r"line 2: 3 column\(s\), expected 4"):
        read_glue_tsv(SPECS["cola"], path)


def test_unknown_label_and_missing_column(tmp_path):
    path = _write(tmp_path, "SST-2", "dev.tsv", ["sentence\tlabel", "fine .\t1", "meh .\tpositive"])
    with pytest.raises(DataError, match=r"line 3: label 'positive' is not one of \['0', '1'\]"):
        read_glue_tsv(SPECS["sst2"], path)
    path = _write(tmp_path, "SST-2", "train.tsv", ["text\tlabel", "fine .\t1"])
    with pytest.raises(DataError, match=r"line 1: header .* lacks column\(s\) \['sentence'\]"):
        read_glue_tsv(SPECS["sst2"], path)
    path = _write(tmp_path, "STS-B", "dev.tsv", [
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        "0\tg\tf\ty\to\ts\ts\tA.\tB.\tfive",
    ])
    with pytest.raises(DataError, match=r"line 2: label 'five' is not a number"):
        read_glue_tsv(SPECS["stsb"], path)


# --- protocol, holdout and subsample --------------------------------------------------------

def test_holdout_split_is_deterministic_disjoint_and_ordered():
    items = list(range(1000))
    fit, held = holdout_split(items, 0.1, seed=3)
    assert len(held) == 100 and len(fit) == 900
    assert sorted(fit + held) == items and not set(fit) & set(held)
    assert fit == sorted(fit) and held == sorted(held)
    assert holdout_split(items, 0.1, seed=3) == (fit, held)
    assert holdout_split(items, 0.1, seed=4)[1] != held
    with pytest.raises(ConfigError):
        holdout_split(items, 1.5, seed=0)


def test_subsample_fixed_and_ordered():
    items = [f"x{i}" for i in range(50)]
    a = subsample(items, 10, seed=1)
    assert a == subsample(items, 10, seed=1) and len(a) == 10
    assert a == sorted(a, key=lambda s: int(s[1:]))
    assert subsample(items, 10, seed=2) != a
    assert subsample(items, None, seed=1) == items and subsample(items, 99, seed=1) == items


def test_protocol_splits(data_root):
    official = get_task({"name": "rte"}, data_root).protocol_splits(seed=0)
    assert (len(official["fit"]), len(official["select"]), len(official["test"]["dev"])) == (2490, 277, 277)
    task = get_task({"name": "rte", "protocol": "holdout", "max_eval_items": 50}, data_root)
    split = task.protocol_splits(seed=0)
    assert (len(split["fit"]), len(split["select"]), len(split["test"]["dev"])) == (2241, 50, 50)
    full = get_task({"name": "rte", "protocol": "holdout"}, data_root).protocol_splits(seed=0)
    assert len(full["select"]) == 249
    # RTE train repeats a few identical rows, so compare multisets, not sets
    assert Counter(full["select"]) + Counter(full["fit"]) == Counter(task.rows("train"))
    with pytest.raises(ConfigError, match="data.protocol"):
        get_task({"name": "rte", "protocol": "kfold"}, data_root)


# --- data=<name> (the registry's ConfigStore nodes) -------------------------------------------

def test_every_data_option_builds_its_task(data_root):
    from lodabench.tasks import task_names
    from lodabench.config.schema import compose

    for name in task_names():
        cfg = compose([f"data={name}"]).data
        assert cfg.name == name
        task = get_task(cfg, data_root)  # unknown keys or bad values would raise ConfigError
        assert task.name == name
