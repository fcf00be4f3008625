"""GLUE in the original TSV format (GLUE's ``download_glue_data.py``) -> (text_a, text_b, label).

Files: ``<data_root>/glue/<DIR>/{train,dev}.tsv``; MNLI has ``dev_matched.tsv`` and
``dev_mismatched.tsv`` instead of ``dev.tsv``. Read as tab-separated with no quoting
(``csv.QUOTE_NONE``: SST-2 and MRPC texts contain bare ``"``), UTF-8 with an optional BOM
(MRPC files start with one). Quirks handled:

* CoLA has no header: 4 columns ``source, label, original_label, sentence``.
* Every other file has a header; columns are found by name, so MNLI's train (12 columns) and
  dev (16 columns: label1..label5) both work, and QNLI/RTE/STS-B's leading ``index`` column and
  STS-B's metadata columns are ignored.
* Every row must have as many columns as the header (CoLA: 4); otherwise ``DataError`` with the
  file and line number. Blank lines are skipped.

Labels are mapped to ids in the order of the Hugging Face ``nyu-mll/glue`` ClassLabels, so the
local TSVs and the hub give the same ids: CoLA unacceptable/acceptable, SST-2 negative/positive,
MRPC not_equivalent/equivalent, QQP not_duplicate/duplicate, MNLI
entailment/neutral/contradiction, QNLI and RTE entailment/not_entailment. STS-B is a regression
(float score in [0, 5], ``num_labels = 1``). A label not in the task's list is a DataError.

Splits: ``train`` and ``dev`` (MNLI: ``dev_matched``, ``dev_mismatched``). The GLUE test labels
are not public, so the official dev split is the test split the papers report
(``task.test_splits``). ``data.protocol: holdout`` gives CondLoRA's protocol (model selection on
a seeded 10% of train, see ``lodabench.tasks.holdout_split``).

Without a data root (``lodabench.tasks.hub``): the parquet files of ``data.hub_id`` (``nyu-mll/glue``)
at ``data.hub_revision``. Default ``main``: nyu-mll/glue is a parquet repository, its own files are
``<task>/{train,validation,test}-00000-of-00001.parquet`` (MNLI: ``validation_matched-...``), columns
the task's text fields (``sentence``; ``sentence1``/``sentence2``; ``question``/``sentence``;
``premise``/``hypothesis``; ``question1``/``question2``), ``label`` (the ClassLabel id; STS-B a
float) and ``idx``. ``main`` is a branch: the commit it resolved to is recorded (a sha pins it). A
local folder mirroring either ``main`` or ``refs/convert/parquet`` (``<task>/<split>/0000.parquet``)
is read as it is; a label outside the task's classes (the unlabelled test split's -1) is a DataError.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from lodabench.tasks.hub import DataSource, as_source
from lodabench.tasks.registry import TaskSpec
from lodabench.tasks.specs import DATA_ROOT_HINT, ClassificationTask, DataConfig, Metric, Row, TaskMetrics
from lodabench.errors import ConfigError, DataError
from lodabench.config.ranges import rng
from lodabench.config.typed import hp

HUB_ID = "nyu-mll/glue"
HUB_REVISION = "main"  # a parquet repository: its own files (datasets>=4 loads them too)
HOW_TO_GET = (
    "Get the original GLUE TSVs with GLUE's download_glue_data.py "
    "(https://github.com/nyu-mll/GLUE-baselines, https://gluebenchmark.com/tasks) into "
    "<data_root>/glue/<TASK>/. " + DATA_ROOT_HINT + "."
)

# Texts can be long (QNLI passages); the csv module's default limit is 128 KiB per field.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class GlueSpec:
    """How one GLUE task is stored: folder, columns, label vocabulary, metrics, hub fields."""

    name: str                       # config name, also the nyu-mll/glue config
    folder: str                     # <data_root>/glue/<folder>/
    files: dict[str, str]           # split -> file name
    text_a: str | int               # header name, or column index when there is no header
    text_b: str | int | None
    label: str | int
    label_names: tuple[str, ...] | None   # None: regression
    file_labels: tuple[str, ...] | None   # the strings in the TSV, in id order
    metrics: TaskMetrics            # keys of scoring.glue.TASK_METRICS[name]; the first is the paper's
    hub_fields: tuple[str, str | None]
    hub_splits: dict[str, str]
    n_columns: int | None = None    # for header-less files

    @property
    def has_header(self) -> bool:
        return self.n_columns is None


_TRAIN_DEV = {"train": "train.tsv", "dev": "dev.tsv"}


def _metrics(label: str, *keys: str) -> TaskMetrics:
    """``keys`` as scoring.glue returns them (already x100, printed with one decimal); the first is
    the one the LoRA paper's RoBERTa GLUE table reports (Hu et al. 2021, Table 2 caption: "Matthew's
    correlation for CoLA, Pearson correlation for STS-B, and accuracy for other tasks"; MRPC and QQP:
    accuracy, not F1) and the one selection maximises."""
    return TaskMetrics(tuple(Metric(k) for k in keys), label=label)


_HUB_TRAIN_DEV = {"train": "train", "dev": "validation"}

SPECS: dict[str, GlueSpec] = {
    s.name: s
    for s in [
        GlueSpec("cola", "CoLA", _TRAIN_DEV, 3, None, 1, ("unacceptable", "acceptable"),
                 ("0", "1"), _metrics("CoLA", "mcc"), ("sentence", None),
                 _HUB_TRAIN_DEV, n_columns=4),
        GlueSpec("sst2", "SST-2", _TRAIN_DEV, "sentence", None, "label", ("negative", "positive"),
                 ("0", "1"), _metrics("SST-2", "accuracy"), ("sentence", None), _HUB_TRAIN_DEV),
        GlueSpec("mrpc", "MRPC", _TRAIN_DEV, "#1 String", "#2 String", "Quality",
                 ("not_equivalent", "equivalent"), ("0", "1"), _metrics("MRPC", "accuracy", "f1"),
                 ("sentence1", "sentence2"), _HUB_TRAIN_DEV),
        GlueSpec("qqp", "QQP", _TRAIN_DEV, "question1", "question2", "is_duplicate",
                 ("not_duplicate", "duplicate"), ("0", "1"), _metrics("QQP", "accuracy", "f1"),
                 ("question1", "question2"), _HUB_TRAIN_DEV),
        GlueSpec("stsb", "STS-B", _TRAIN_DEV, "sentence1", "sentence2", "score", None, None,
                 _metrics("STS-B", "pearson", "spearman"), ("sentence1", "sentence2"), _HUB_TRAIN_DEV),
        GlueSpec("mnli", "MNLI",
                 {"train": "train.tsv", "dev_matched": "dev_matched.tsv",
                  "dev_mismatched": "dev_mismatched.tsv"},
                 "sentence1", "sentence2", "gold_label", ("entailment", "neutral", "contradiction"),
                 ("entailment", "neutral", "contradiction"), _metrics("MNLI", "accuracy"),
                 ("premise", "hypothesis"),
                 {"train": "train", "dev_matched": "validation_matched",
                  "dev_mismatched": "validation_mismatched"}),
        GlueSpec("qnli", "QNLI", _TRAIN_DEV, "question", "sentence", "label",
                 ("entailment", "not_entailment"), ("entailment", "not_entailment"),
                 _metrics("QNLI", "accuracy"), ("question", "sentence"), _HUB_TRAIN_DEV),
        GlueSpec("rte", "RTE", _TRAIN_DEV, "sentence1", "sentence2", "label",
                 ("entailment", "not_entailment"), ("entailment", "not_entailment"),
                 _metrics("RTE", "accuracy"), ("sentence1", "sentence2"), _HUB_TRAIN_DEV),
    ]
}
PROTOCOLS = ("official", "holdout")
STSB_RANGE = (0.0, 5.0)  # GLUE STS-B: similarity scored 0-5 (Cer et al. 2017); also rejects NaN (no order)


def _parse_label(spec: GlueSpec, value: str, where: str) -> int | float:
    if spec.label_names is None:
        try:
            score = float(value)
        except ValueError:
            raise DataError(f"{where}: label {value!r} is not a number (STS-B scores are floats "
                            "in [0, 5])") from None
        # float() accepts 'nan' and 'inf': a NaN target would silently poison the loss and Pearson.
        if not STSB_RANGE[0] <= score <= STSB_RANGE[1]:
            raise DataError(f"{where}: label {value!r} is outside [0, 5] (STS-B similarity scores); "
                            "fix or drop that row of the file")
        return score
    assert spec.file_labels is not None
    try:
        return spec.file_labels.index(value.strip())
    except ValueError:
        raise DataError(f"{where}: label {value!r} is not one of {list(spec.file_labels)} "
                        f"({spec.name})") from None


def read_glue_tsv(spec: GlueSpec, path: Path) -> list[Row]:
    """The rows of one GLUE TSV; DataError names the file and line of any malformed row."""
    if not path.is_file():
        raise DataError(f"GLUE {spec.name} file not found: {path}. {HOW_TO_GET}")
    rows: list[Row] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            if spec.has_header:
                header = next(reader, None)
                if header is None:
                    raise DataError(f"{path}: line 1: empty file, expected a header row")
                columns = {name: i for i, name in enumerate(header)}
                wanted = [c for c in (spec.text_a, spec.text_b, spec.label) if c is not None]
                missing = [c for c in wanted if c not in columns]
                if missing:
                    raise DataError(f"{path}: line 1: header {header!r} lacks column(s) {missing} "
                                    f"needed for {spec.name} (original GLUE TSV format)")
                n_columns = len(header)
                ia, ib, il = (columns[spec.text_a],
                              columns[spec.text_b] if spec.text_b is not None else None,
                              columns[spec.label])
            else:
                n_columns = spec.n_columns
                ia, ib, il = spec.text_a, spec.text_b, spec.label
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != n_columns:
                    raise DataError(f"{path}: line {line}: {len(row)} column(s), expected "
                                    f"{n_columns} ({spec.name}, tab-separated): {row!r:.200}")
                where = f"{path}: line {line}"
                rows.append(Row(row[ia], row[ib] if ib is not None else None,
                                _parse_label(spec, row[il], where)))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 (byte {err.start}): {err.reason}") from None
    return rows


def load_split(spec: GlueSpec, split: str, data_root: Path | DataSource | None) -> list[Row]:
    """Rows of one split from ``<data_root>/glue/`` or, data_root None, the hub (``lodabench.tasks.hub``)."""
    source = as_source(data_root, HUB_ID, HUB_REVISION, spec.name)
    if source.is_hub:
        return hub_rows(spec, source, split)
    return read_glue_tsv(spec, source.root_file(f"glue/{spec.folder}/{spec.files[split]}"))


def hub_rows(spec: GlueSpec, source: DataSource, split: str) -> list[Row]:
    """The rows of a hub split; labels checked as the TSVs' are (DataError names split and row)."""
    field_a, field_b = spec.hub_fields
    columns = [c for c in (field_a, field_b, "label") if c]
    records = source.hub_rows(spec.hub_splits[split], columns)
    where = source.where(spec.hub_splits[split])
    return [Row(r[field_a], r[field_b] if field_b else None, _hub_label(spec, r["label"], f"{where} row {i}"))
            for i, r in enumerate(records)]


def _hub_label(spec: GlueSpec, value: object, where: str) -> int | float:
    """A hub label is the class id (the TSV's string in id order), or STS-B's score."""
    if spec.label_names is None:
        return _parse_label(spec, str(value), where)
    if not isinstance(value, int) or not 0 <= value < len(spec.label_names):
        raise DataError(f"{where}: label {value!r} is not a class id of {spec.name} (0..{len(spec.label_names) - 1}: "
                        f"{', '.join(spec.label_names)}); the test splits are unlabelled (-1). Fix: use the "
                        "train/validation files of nyu-mll/glue")
    return value


@dataclass
class GlueDataConfig(DataConfig):
    """``data=<glue task>``: its keys are the ``data.*`` keys of ``data=<task>`` (the ConfigStore node made from this default).

    One class for the eight tasks: each registers ``GlueDataConfig(name=<task>)`` as its default.
    """

    protocol: str = hp("official", "official: fit on train, report dev (LoRA). holdout: CondLoRA's protocol, select "
                       "on a seeded holdout_fraction of train (seed = the run seed), report the official dev split "
                       "as the test set.")
    holdout_fraction: float = hp(0.1, "share of train held out for model selection under protocol=holdout "
                                 "(CondLoRA: 10%; lodabench.tasks.holdout_split)", rng("(0, 1)"))
    hub_id: str = hp(HUB_ID, "Without a data root: the hub dataset read (nyu-mll/glue, GLUE of gluebenchmark.com as "
                     "parquet, config = the task), or a local folder laid out like it (<task>/train-*.parquet, or "
                     "the parquet export's <task>/train/0000.parquet; `hf download nyu-mll/glue --repo-type dataset "
                     "--local-dir DIR`) (lodabench/tasks/hub.py)")
    hub_revision: str = hp(HUB_REVISION, "Revision of data.hub_id: main, nyu-mll/glue's own parquet files; a branch, "
                           "so the commit it resolves to is recorded in record.json inputs.data; a commit sha pins it")

    def validate(self) -> None:
        super().validate()
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"data.protocol={self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"data.holdout_fraction={self.holdout_fraction!r} must be in (0, 1). "
                              "Fix: e.g. data.holdout_fraction=0.1 (CondLoRA)")


def build_task(conf: GlueDataConfig, data_root: Path | None) -> ClassificationTask:
    """The GLUE task ``conf.name`` of a validated config (rows read when a split is first asked for)."""
    spec = SPECS[conf.name]
    splits = tuple(spec.files)
    source = DataSource(data_root, conf.hub_id, conf.hub_revision, spec.name, HUB_ID)
    return ClassificationTask(
        name=spec.name,
        splits=splits,
        label_names=spec.label_names,
        is_regression=spec.label_names is None,
        metric_names=spec.metrics.names,
        loader=lambda split: load_split(spec, split, source),
        slicing=conf.slicing(),
        test_splits=tuple(s for s in splits if s != "train"),
        protocol=conf.protocol,
        holdout_fraction=conf.holdout_fraction,
        inputs=source.inputs,
    )


def describe(spec: GlueSpec) -> str:
    """The task's one-paragraph description (shown by docs and `--help`)."""
    files = ",".join(f.removesuffix(".tsv") for f in spec.files.values())
    return (f"GLUE {spec.folder} (original TSV format): lodabench/tasks/glue.py. Reported metric: "
            f"{spec.metrics.primary_metric} on the official dev split. Local files: <data_root>/glue/{spec.folder}/"
            f"{{{files}}}.tsv; data_root null -> data.hub_id ({HUB_ID}, {spec.name}/*.parquet).")


TASKS = [TaskSpec(name, GlueDataConfig(name=name), build_task, "classification", describe(spec), spec.metrics)
         for name, spec in SPECS.items()]
