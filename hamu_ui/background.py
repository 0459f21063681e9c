"""Long work that no page waits on: process-wide background jobs, keyed by what they compute.

A job runs on one worker thread shared by every session (two cores leave no room for
more), reports a progress fraction and a message as it goes, and keeps its result or its
error. Pages look a job up by its key on every run and poll it with a small
``st.fragment(run_every=...)`` note; the result also lands wherever the work itself keeps it
(the trained-model store, a disk cache), so the next run picks it up from there.

Nothing here draws: a worker thread has no Streamlit run to draw into, so ``Job`` only
holds numbers and text that a page reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import streamlit as st

from hamu_core.models.training import Progress

WORKERS = 1  # background threads; on two shared cores a second would only slow the pages


@dataclass
class Job:
    """One piece of background work: how far it got, and how it ended."""

    key: tuple
    fraction: float = 0.0  # 0..1, as last reported
    message: str = "waiting for the jobs before it"
    error: str | None = None  # one line when the work raised
    future: Future | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def report(self, fraction: float, message: str) -> None:
        """The ``Progress`` callback handed to the work."""
        self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), message

    def result(self):
        """What the work returned (only once ``done`` and without ``error``)."""
        return self.future.result()


class Jobs:
    """The process's background jobs by key; a key already queued, running or done is not started again."""

    def __init__(self, workers: int = WORKERS) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hamu-background")
        self.lock = threading.Lock()
        self.jobs: dict[tuple, Job] = {}

    def start(self, key: tuple, work: Callable[[Progress], object]) -> Job:
        """The job under ``key``, started with ``work(progress)`` unless one is there (a failed one is retried)."""
        with self.lock:
            job = self.jobs.get(key)
            if job is not None and job.error is None:
                return job
            job = self.jobs[key] = Job(key)

            def run():
                job.report(0.0, "started")
                try:
                    result = work(job.report)
                except Exception as err:  # the page shows it in one line; the job is retried on the next start
                    job.error = f"{type(err).__name__}: {err}"
                    raise
                job.report(1.0, "done")
                return result

            job.future = self.pool.submit(run)
            return job


@st.cache_resource(show_spinner=False)
def jobs() -> Jobs:
    """The process-wide job list, shared by every session."""
    return Jobs()
