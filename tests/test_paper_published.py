"""results/paper/{loda,condlora}_*.csv re-read from the papers' text (../shared/papers/*.txt).

Every published number of LoDA Tables 1-2 and CondLoRA Tables 2-4 is parsed out of the text
extracted from the PDFs and compared with the committed CSV, cell by cell: value, ±, the row's
parameter count and Approx column, and which of our methods the row names. The tables' text is
garbled LaTeX/Markdown in places, so the parser keeps only the numbers of each cell (first = value,
second = ±).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lodabench.results import tables
from lodabench.paths import REPO_ROOT

PAPER_DIR = REPO_ROOT / "results" / "paper"
NUM = re.compile(r"\d*\.\d+|\d+")


def _papers(shared: Path) -> Path:
    path = shared / "papers"
    if not (path / "loda_liu2023.txt").is_file():
        pytest.skip("../shared/papers/loda_liu2023.txt not found")
    return path


def _cell_numbers(cell: str) -> list[float]:
    # Drop LaTeX command names (\pm, \pmb, \scriptstyle ...) so only the printed digits remain.
    return [float(x) for x in NUM.findall(re.sub(r"\\[a-zA-Z]+", " ", cell))]


def _markdown_rows(text: str, first_line: str, n_rows: int) -> list[list[str]]:
    """The ``n_rows`` data rows of the Markdown table whose row starts with ``first_line``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_line))
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[start:start + n_rows]]


def _csv_rows(name: str) -> list[pd.DataFrame]:
    """The CSV's published rows in file order, one frame (its metrics) per table row."""
    df = pd.read_csv(PAPER_DIR / name, dtype=str, keep_default_na=False)
    keys = list(dict.fromkeys(zip(df.row_label, df.approx, df.params)))
    return [df[(df.row_label == k[0]) & (df.approx == k[1]) & (df.params == k[2])] for k in keys]


APPROX_TEXT = {"No": "", "Keep 40%": "p=0.4", "Keep 50%": "p=0.5", "Keep 60%": "p=0.6",
               "Rank300": "R=300", "Rank400": "R=400", "Rank500": "R=500"}

# (a fragment of the paper's row label, our method name), in the tables' row order.
LODA_T1_ROWS = [("FT*", "ft"), ("Adapter ^L", "adapter_l"), ("Adapter ^L", "adapter_l"), ("Adapter ^H", "adapter_h"),
                ("PreLayer", "prefix"), ("Top2", "ft_top2"), (r"W_{\mathrm{q}}", "ft_qv"), ("LoRA", "lora"),
                ("LoDA", "loda"), ("S-LoDA", "s_loda"), ("R-LoDA", "r_loda"), ("LoDA+", "loda_plus"),
                ("S-LoDA+", "s_loda_plus"), ("R-LoDA+", "r_loda_plus")]
LODA_T2_ROWS = [(r"W_{\mathrm{q}}", "ft_qv"), ("LoRA", "lora"), ("LoDA", "loda"), ("S-LoDA", "s_loda"),
                ("S-LoDA", "s_loda"), ("R-LoDA", "r_loda"), ("R-LoDA", "r_loda"), ("R-LoDA", "r_loda"),
                ("LoDA+", "loda_plus"), ("S-LoDA+", "s_loda_plus"), ("S-LoDA+", "s_loda_plus"),
                ("R-LoDA+", "r_loda_plus"), ("R-LoDA+", "r_loda_plus"), ("R-LoDA+", "r_loda_plus")]


def _check_loda_table(text_rows: list[list[str]], csv_rows: list[pd.DataFrame], expected: list[tuple[str, str]],
                      metrics: list[str]) -> int:
    assert len(text_rows) == len(csv_rows) == len(expected)
    checked = 0
    for cells, rows, (fragment, method) in zip(text_rows, csv_rows, expected):
        label, approx, params, *values = cells
        assert fragment in label and set(rows.method) == {method}, (label, set(rows.method))
        assert set(rows.approx) == {APPROX_TEXT[approx]} and set(rows.params) == {params}, label
        assert list(rows.metric) == metrics, label
        for metric, cell in zip(metrics, values):
            nums = _cell_numbers(cell)
            row = rows[rows.metric == metric].iloc[0]
            assert float(row.value) == nums[0], (label, metric, cell)
            assert (float(row.pm) if row.pm else None) == (nums[1] if len(nums) > 1 else None), (label, metric, cell)
            checked += 1
    return checked


def test_loda_table1_matches_paper_text(shared: Path) -> None:
    text = (_papers(shared) / "loda_liu2023.txt").read_text(encoding="utf-8")
    rows = _markdown_rows(text, "| FT* |", 14)
    n = _check_loda_table([r[:8] for r in rows], _csv_rows("loda_table1_e2e.csv"), LODA_T1_ROWS,
                          ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"])
    assert n == 70


def test_loda_table1_s_loda_row_repeats_loda_row() -> None:
    """The published S-LoDA (Keep 40%) row prints exactly the LoDA row's numbers (kept as printed)."""
    df = pd.read_csv(PAPER_DIR / "loda_table1_e2e.csv", keep_default_na=False)
    pick = lambda m: df[df.method == m][["metric", "value", "pm"]].reset_index(drop=True)  # noqa: E731
    assert pick("s_loda").equals(pick("loda"))


def test_loda_table2_matches_paper_text(shared: Path) -> None:
    text = (_papers(shared) / "loda_liu2023.txt").read_text(encoding="utf-8")
    rows = _markdown_rows(text, r"| $\mathrm{FT}^{W_{\mathrm{q}},W_{\mathrm{v}}}$ | No | 48.00M | $47.1", 14)
    n = _check_loda_table(rows, _csv_rows("loda_table2_dart.csv"), LODA_T2_ROWS, ["BLEU", "METEOR", "TER"])
    assert n == 42


def _condlora_text(shared: Path) -> list[str]:
    return (_papers(shared) / "condlora_kim2024.txt").read_text(encoding="utf-8").splitlines()


def test_condlora_table2_matches_paper_text(shared: Path) -> None:
    lines = _condlora_text(shared)
    head = next(i for i, line in enumerate(lines) if line.startswith("MNLI SST-2 MRPC CoLA QNLI QQP RTE STS-B Avg."))
    assert lines[head + 4].startswith("Table 2: Evaluation on GLUE tasks. These scores are the average of three models.")
    df = pd.read_csv(PAPER_DIR / "condlora_table2_glue.csv", keep_default_na=False)
    tasks = ["mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb", "glue_avg"]
    printed = {}
    for line, method in ((lines[head + 1], "lora"), (lines[head + 2], "condlora")):
        label, *nums = line.split()
        assert label == {"lora": "LoRA", "condlora": "CondLoRA"}[method]
        rows = df[df.method == method]
        assert list(rows.dataset) == tasks and set(rows.pm) == {""}  # the paper prints no ±
        assert [float(v) for v in rows.value] == [float(x) for x in nums]
        printed[method] = [float(x) for x in nums]
    # The paper's Δ row is CondLoRA − LoRA: a consistency check of the two transcribed rows.
    delta = [float(x) for x in lines[head + 3].split()[-9:]]
    assert [round(c - a, 2) for a, c in zip(printed["lora"], printed["condlora"])] == delta
    # Table 2 prints no parameter counts; the CSV's come from Table 4.
    assert set(df[df.method == "lora"].params) == {"294,912"} and set(df[df.method == "condlora"].params) == {"24,576"}


def test_condlora_table3_matches_paper_text(shared: Path) -> None:
    lines = _condlora_text(shared)
    end = next(i for i, line in enumerate(lines) if line.startswith("Table 3: Normalized subspace similarity"))
    df = pd.read_csv(PAPER_DIR / "condlora_table3_subspace.csv", keep_default_na=False)
    for line, matrix in zip(lines[end - 3:end], ("A", "B", "DeltaW")):
        printed = [float(x) for x in line.split()[-12:]]
        rows = df[df.matrix == matrix].sort_values("layer")
        assert list(rows.layer) == list(range(1, 13)) and set(rows.module) == {"value"}
        assert [float(v) for v in rows.phi] == printed, matrix


def test_condlora_table4_matches_paper_text(shared: Path) -> None:
    lines = _condlora_text(shared)
    end = next(i for i, line in enumerate(lines) if line.startswith("Table 4: Trainable parameters and speed"))
    df = pd.read_csv(PAPER_DIR / "condlora_table4_speed.csv", keep_default_na=False)
    for line, method in zip(lines[end - 2:end], ("lora", "condlora")):
        label, params, speed = line.split()
        row = df[df.method == method].iloc[0]
        assert row.row_label == label and row.params == params and float(row.value) == float(speed)
    # 294,912 = (768·8 + 768·8) · 2 modules · 12 layers; CondLoRA's is the same without the · 12.
    assert 294_912 == (768 * 8 * 2) * 2 * 12 and 24_576 == 294_912 // 12


def test_committed_csvs_are_the_shared_transcription(shared: Path) -> None:
    for name in ("loda_table1_e2e.csv", "loda_table2_dart.csv", "condlora_table2_glue.csv",
                 "condlora_table3_subspace.csv", "condlora_table4_speed.csv"):
        ref = shared / "paper" / name
        if ref.is_file():
            assert (PAPER_DIR / name).read_text() == ref.read_text(), name


def test_all_long_format_csvs_load() -> None:
    df = tables.load_paper(PAPER_DIR)
    assert {"loda_table1_e2e.csv", "loda_table2_dart.csv", "condlora_table2_glue.csv",
            "condlora_table4_speed.csv"} <= set(df.file)
    assert len(df[df.file == "loda_table1_e2e.csv"]) == 70 and len(df[df.file == "loda_table2_dart.csv"]) == 42
    assert "condlora_table3_subspace.csv" not in set(df.file)   # its own layout (layer, phi)
    assert len(tables.load_paper_subspace(PAPER_DIR)) == 36
