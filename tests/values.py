"""Comparing a loaded value with the one stored, whatever its kind (arrays, frames, tables, Python values)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


def assert_same_value(loaded: Any, value: Any) -> None:
    """``loaded`` equals ``value``: element-wise for arrays, frames and tables, by ``==`` otherwise."""
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    elif isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, pa.Table):
        assert loaded.equals(value)
    else:
        assert loaded == value
