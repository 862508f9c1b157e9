"""Raw cells as values: numbers and UTC timestamps out of text, with a mask of what did not parse.

Shared by the readers (ingest.parse settles number columns chunk by chunk) and the cleaning
(ingest.clean types the rest).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NA_TOKENS = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none"]


def as_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column as float64, and a mask of values present but not numbers."""
    if pd.api.types.is_bool_dtype(column):
        column = column.astype("object")
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64"), pd.Series(False, index=column.index)
    text = column.astype("string").str.strip()
    empty = text.isna() | text.isin(NA_TOKENS)
    numbers = pd.to_numeric(text.where(~empty), errors="coerce").astype("float64")
    return numbers, ~empty & numbers.isna()


def as_utc(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A timestamp column as UTC (naive means UTC), and a mask of values present but unparsable."""
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
        return stamps.astype("datetime64[ns, UTC]"), pd.Series(False, index=column.index)
    text = column.astype("string").str.strip()
    empty = text.isna() | text.isin(NA_TOKENS)
    # pandas applies the first offset it sees to naive strings in the same call: parse the
    # naive ones (which mean UTC) apart from those that carry an offset
    aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).fillna(False).astype(bool)
    stamps = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for part in (aware & ~empty, ~aware & ~empty):
        if part.any():
            stamps[part] = pd.to_datetime(text[part], format="ISO8601", utc=True, errors="coerce")
    return stamps, ~empty & stamps.isna()


def as_text(values: pd.Series) -> pd.Series:
    """Values as they read in a message or a quarantine record: whole numbers without '.0',
    missing ones empty (<NA>)."""
    if not pd.api.types.is_float_dtype(values):
        return values.astype("string")
    numbers = values.to_numpy(dtype="float64")
    whole = np.isfinite(numbers) & (np.mod(numbers, 1, where=np.isfinite(numbers),
                                           out=np.ones_like(numbers)) == 0) & (np.abs(numbers) < 2**53)
    text = values.astype("string")
    text[whole] = numbers[whole].astype(np.int64).astype(str)
    return text
