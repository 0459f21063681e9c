"""The command line called in the test process: ``hamu_core.cli.main(argv)`` with its output captured.

A subprocess per command paid Python's, torch's and the dataset's start-up every time (the
CLI tests were among the slowest of the suite); in-process they share what is already
loaded. What a user sees is the same: the exit code ``main`` returns (or argparse's
``SystemExit`` for ``--help`` and bad arguments), stdout and stderr. One subprocess smoke
test in ``tests/core/test_cli.py`` keeps ``python -m hamu_core`` itself covered.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from hamu_core.cli import main


@dataclass(frozen=True)
class Called:
    """What one command left behind, named as ``subprocess.CompletedProcess`` names it."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(home: Path | None, *args: str) -> Called:
    """``python -m hamu_core ARGS`` with ``HAMU_DATA_DIR=home`` (the session's folder when None)."""
    out, err = io.StringIO(), io.StringIO()
    env = {} if home is None else {"HAMU_DATA_DIR": str(home)}
    with mock.patch.dict(os.environ, env), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse: --help exits 0, a bad argument 2
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    return Called(code, out.getvalue(), err.getvalue())
