"""The page boundary: whatever a page or a widget callback raises, the user reads one line, never a traceback.

Streamlit draws an uncaught exception as the whole traceback in the page. Every page
therefore runs its body inside ``page_boundary()`` (and ``app.py`` runs the chosen page
inside one more), which turns an exception into one plain line and an expandable
"details for a bug report" holding the traceback. A widget callback runs before the page
does, outside any boundary, so it hands its failure to ``remember``; the next boundary
shows it. Nothing here touches the ``StudioSession``: the data, forget set and run a
session had before the failure are still there afterwards. Streamlit's own control flow
(``st.stop``, ``st.rerun``) raises ``BaseException`` subclasses and passes through untouched.
"""

from __future__ import annotations

import contextlib
import platform
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st

from hamu_core.data.labelled import DataError

PENDING_KEY = "boundary.pending"  # failures remembered by callbacks, shown by the next boundary
LINE_CHARS = 400  # longest message shown in the one line; the details keep all of it


@dataclass(frozen=True)
class Failure:
    """What a user sees of one exception: a line to read and details to paste into a bug report."""

    line: str
    details: str


def describe(err: BaseException, doing: str) -> Failure:
    """The one line (a refused input reads as such, anything else as a fault of the Studio) and the details."""
    text = " ".join(str(err).split()) or type(err).__name__
    if len(text) > LINE_CHARS:
        text = text[:LINE_CHARS - 1] + "…"
    if isinstance(err, DataError):
        line = f"{doing} was refused: {text}"
    else:
        line = (f"{doing} failed because of a fault in the Studio ({type(err).__name__}: {text}). Your data, "
                "forget set and run are kept; the details below help to report it.")
    details = "".join(traceback.format_exception(err))
    versions = f"Python {platform.python_version()}, Streamlit {st.__version__}, {platform.platform()}"
    return Failure(line, f"{details}\n{versions}")


def show(failure: Failure) -> None:
    st.error(failure.line)
    with st.expander("Details for a bug report"):
        st.code(failure.details, language=None)


def remember(err: BaseException, doing: str) -> None:
    """Keep a callback's failure for the next boundary to show (callbacks run before any page draws)."""
    st.session_state.setdefault(PENDING_KEY, []).append(describe(err, doing))


@contextlib.contextmanager
def page_boundary(doing: str = "This page") -> Iterator[None]:
    """Show remembered failures, then run the block; an exception from it becomes ``show(describe(...))``."""
    for failure in st.session_state.pop(PENDING_KEY, []):
        show(failure)
    try:
        yield
    except Exception as err:  # noqa: BLE001 -- the boundary exists to catch what nothing else did
        show(describe(err, doing))
