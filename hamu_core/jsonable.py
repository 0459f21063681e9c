"""Values as plain JSON types: the one conversion every JSON the Studio writes goes through.

Metrics, reports, audits, ledgers and the run store all hold numpy and torch scalars and
arrays, tuples and NaN. ``json`` knows none of the first three and writes NaN as a token
that strict readers refuse, so each of them converts here, in the same way. The two
callers differ in one thing only: a report or an export is read by other programs and
states a missing number as ``null``, while the run store keeps NaN as NaN so that every
float it holds reads back bit for bit.

This module imports nothing from the rest of the core, so every part may use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def to_jsonable(value, *, keep_nonfinite: bool = False):
    """``value`` as dicts, lists, str, int, float, bool and None, ready for ``json.dumps``.

    Mappings become dicts with string keys; tuples, lists, numpy arrays and torch tensors
    become lists; numpy and torch scalars become Python ones. NaN and ±Inf become None
    unless ``keep_nonfinite``. Anything else is returned unchanged, so ``json.dumps`` still
    names a type it cannot write.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, keep_nonfinite=keep_nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, keep_nonfinite=keep_nonfinite) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if keep_nonfinite or math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy arrays and 0-d arrays, torch tensors and their scalars
        return to_jsonable(value.tolist(), keep_nonfinite=keep_nonfinite)
    return value
