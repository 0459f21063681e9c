"""to_jsonable: every value the Studio writes as JSON becomes plain JSON types, the same way everywhere."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hamu_core.jsonable import to_jsonable
from hamu_core.runs.store_schema import dumps

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
# Scalars as the core holds them: Python, numpy and torch, with the plain value each must become.
SCALARS = st.one_of(
    FLOATS.map(lambda v: (v, v)),
    FLOATS.map(lambda v: (np.float64(v), v)),
    st.floats(width=32, allow_nan=False).map(lambda v: (np.float32(v), v)),
    st.integers(-(2**62), 2**62).map(lambda v: (np.int64(v), v)),
    st.booleans().map(lambda v: (np.bool_(v), v)),
    st.integers(-1000, 1000).map(lambda v: (torch.tensor(v), v)),
    st.text(max_size=5).map(lambda v: (v, v)),
    st.none().map(lambda v: (v, v)),
)


def nested(children):
    """Tuples, lists and dicts (with int keys too) of ``children``, paired with their plain form."""
    pairs = st.lists(children, max_size=4)
    return st.one_of(
        pairs.map(lambda ps: (tuple(p[0] for p in ps), [p[1] for p in ps])),
        pairs.map(lambda ps: ([p[0] for p in ps], [p[1] for p in ps])),
        st.dictionaries(st.integers(0, 9), children, max_size=4).map(
            lambda d: ({k: v[0] for k, v in d.items()}, {str(k): v[1] for k, v in d.items()})),
    )


VALUES = st.recursive(SCALARS, nested, max_leaves=12)


def finite_only(plain):
    """``plain`` as a report states it: every NaN or infinity as None."""
    if isinstance(plain, dict):
        return {k: finite_only(v) for k, v in plain.items()}
    if isinstance(plain, list):
        return [finite_only(v) for v in plain]
    return None if isinstance(plain, float) and not math.isfinite(plain) else plain


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN and bool told apart from int."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@given(VALUES)
def test_reports_get_plain_types_with_nonfinite_numbers_as_null(pair):
    value, plain = pair
    converted = to_jsonable(value)
    assert same(converted, finite_only(plain))
    assert same(json.loads(json.dumps(converted, allow_nan=False)), finite_only(plain))


@given(VALUES)
def test_the_run_store_keeps_nan_and_every_float_bit_for_bit(pair):
    value, plain = pair
    assert same(to_jsonable(value, keep_nonfinite=True), plain)
    assert same(json.loads(dumps(value)), plain)


def test_arrays_and_tensors_of_any_shape_become_nested_lists():
    grid = np.array([[1.5, np.nan], [np.inf, -2.0]], dtype=np.float32)
    assert to_jsonable({"grid": grid}) == {"grid": [[1.5, None], [None, -2.0]]}
    assert to_jsonable(np.array(3)) == 3 and to_jsonable(torch.tensor([True, False])) == [True, False]


def test_what_json_cannot_write_is_left_for_json_to_name():
    with pytest.raises(TypeError, match="object"):
        json.dumps(to_jsonable({"x": object()}))
