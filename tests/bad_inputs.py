"""The bad-input catalogue: each case writes a broken copy of the bundled heart data and names the exact error
lines it must produce. Used at unit level (read + validate) and through `python run.py --source FILE`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import pandas as pd


@dataclass(frozen=True)
class BadInput:
    name: str
    write: Callable[[pd.DataFrame, Path], None]  # (bundled heart frame, path) -> writes the broken file
    expected: Callable[[str], List[str]]  # path -> the error lines, exactly


def _csv(change: Callable[[pd.DataFrame], pd.DataFrame], **to_csv) -> Callable[[pd.DataFrame, Path], None]:
    def write(raw: pd.DataFrame, path: Path) -> None:
        change(raw.copy()).to_csv(path, index=False, **to_csv)

    return write


def _bytes(content: Callable[[pd.DataFrame], bytes]) -> Callable[[pd.DataFrame, Path], None]:
    def write(raw: pd.DataFrame, path: Path) -> None:
        path.write_bytes(content(raw))

    return write


def _set(column: str, rows: List[int], values: list) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df[column] = df[column].astype(object)
        df.loc[rows, column] = values
        return df

    return change


def _latin1_row(raw: pd.DataFrame) -> bytes:
    text = raw.to_csv(index=False).encode("utf-8")
    return text.replace(b"\n40,M,ATA,", b"\n40,M\xe9,ATA,", 1)


BAD_INPUTS = [
    BadInput("missing_column", _csv(lambda df: df.drop(columns=["MaxHR"])),
             lambda p: [f"{p}: column 'MaxHR': rule 'required column' failed: the column is missing"]),
    BadInput("wrong_dtype", _csv(_set("Age", [2, 7], ["forty", "5O"])),
             lambda p: [f"{p}: column 'Age': rule 'numeric value' failed for 2 rows (e.g. 'forty', '5O')"]),
    BadInput("empty_file", _bytes(lambda raw: b""),
             lambda p: [f"{p}: file is empty (0 bytes)"]),
    BadInput("header_only", _csv(lambda df: df.head(0)),
             lambda p: [f"{p}: rule 'at least one data row' failed: there are column names but no rows"]),
    BadInput("single_class_target", _csv(lambda df: df[df["HeartDisease"] == 1]),
             lambda p: [f"{p}: column 'HeartDisease': rule 'both classes present' failed: only label 1 (508 rows) "
                        "found; expected [0, 1]"]),
    BadInput("non_binary_target", _csv(_set("HeartDisease", [0, 1, 2], [2, 3, 2])),
             lambda p: [f"{p}: column 'HeartDisease': rule 'label in [0, 1]' failed for 3 rows (e.g. 2, 3)"]),
    BadInput("all_nan_column", _csv(lambda df: df.assign(Cholesterol=float("nan"))),
             lambda p: [f"{p}: column 'Cholesterol': rule 'not all missing' failed for 918 rows (every value is "
                        "empty or a 'not measured' marker)"]),
    BadInput("unknown_category", _csv(_set("ChestPainType", [3, 4], ["XYZ", "chest pain"])),
             lambda p: [f"{p}: column 'ChestPainType': rule 'one of [ATA, NAP, ASY, TA]' failed for 2 rows "
                        "(e.g. 'XYZ', 'chest pain')"]),
    BadInput("out_of_range", _csv(_set("Age", [3, 4], [-4, 400])),
             lambda p: [f"{p}: column 'Age': rule 'range [1, 120]' failed for 2 rows (e.g. -4, 400)"]),
    BadInput("non_utf8_bytes", _bytes(_latin1_row),
             lambda p: [f"{p}: not utf-8 text (invalid continuation byte: byte 0xe9 at offset 120, line 2); convert "
                        "the file or set read_options.encoding in the dataset description"]),
    BadInput("semicolon_delimited", _csv(lambda df: df, sep=";"),
             lambda p: [f"{p}: rule 'comma-separated columns' failed: the header 'Age;Sex;ChestPainType;RestingBP;"
                        "Cholesterol;FastingBS;Restin' looks ';'-delimited (set read_options.sep in the dataset "
                        "description to read such files)"]),
    BadInput("too_few_rows", _csv(lambda df: df.groupby("HeartDisease").head(10)),
             lambda p: [f"{p}: rule 'minimum rows 50' failed: the data has 20 rows"]),
]
