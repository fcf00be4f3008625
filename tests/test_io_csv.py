"""``lodabench.io.write_csv``, the package's one CSV writer: the byte layouts its callers rely on
(analysis 6-digit floats, parameter table, report_real's CRLF files, pandas tables)."""

from __future__ import annotations

import pandas as pd

from lodabench.io import write_csv


def test_dict_rows_missing_columns_empty_extra_keys_dropped(tmp_path):
    path = write_csv(tmp_path / "a.csv", [{"a": 1, "b": "x,y", "skip": 9}, {"a": 2}], ["a", "b"])
    assert path.read_bytes() == b'a,b\n1,"x,y"\n2,\n'


def test_float_format_applies_to_floats_only(tmp_path):
    path = write_csv(tmp_path / "f.csv", [{"x": 1 / 3, "n": 3, "flag": True}], float_format=".6g")
    assert path.read_text() == "x,n,flag\n0.333333,3,True\n"
    plain = write_csv(tmp_path / "p.csv", [{"x": 1 / 3}])
    assert plain.read_text() == f"x\n{1 / 3!r}\n"


def test_crlf_line_end_and_empty_rows(tmp_path):
    assert write_csv(tmp_path / "c.csv", [{"a": 1}], line_end="\r\n").read_bytes() == b"a\r\n1\r\n"
    assert write_csv(tmp_path / "e.csv", [], ["run_dir"]).read_text() == "run_dir\n"


def test_dataframe_written_as_pandas_writes_it(tmp_path):
    df = pd.DataFrame([{"a": 0.1, "b": None}, {"a": float("nan"), "b": "z"}])
    assert write_csv(tmp_path / "d.csv", df).read_text() == df.to_csv(index=False)
