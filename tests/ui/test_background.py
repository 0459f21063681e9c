"""Background jobs (hamu_ui.background.Jobs) as plain objects: one per key, progress, errors, retries."""

import threading

import pytest

from hamu_ui.background import Jobs


def test_a_key_runs_once_and_reports_its_progress_then_done():
    jobs, release, calls = Jobs(), threading.Event(), []

    def work(report):
        calls.append(1)
        report(0.4, "halfway")
        release.wait(timeout=30)
        return "result"

    job = jobs.start(("k",), work)
    assert jobs.start(("k",), work) is job  # queued or running: not started twice
    while job.message != "halfway":
        release.wait(0.01)
    assert (job.fraction, job.done) == (0.4, False)
    release.set()
    assert job.future.result(timeout=30) == "result" and job.result() == "result"
    assert (job.fraction, job.message, job.error) == (1.0, "done", None)
    assert jobs.start(("k",), work) is job and calls == [1]  # done: kept, not run again


def test_a_failed_job_says_why_in_one_line_and_the_next_start_retries():
    jobs, attempts = Jobs(), []

    def flaky(report):
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("no retain samples left")
        return 7

    failed = jobs.start(("f",), flaky)
    with pytest.raises(ValueError):
        failed.future.result(timeout=30)
    assert failed.done and failed.error == "ValueError: no retain samples left"
    retried = jobs.start(("f",), flaky)
    assert retried is not failed and retried.future.result(timeout=30) == 7 and retried.error is None


def test_progress_is_kept_within_zero_and_one():
    jobs = Jobs()
    job = jobs.start(("p",), lambda report: report(1.7, "over"))
    job.future.result(timeout=30)
    assert job.fraction == 1.0
    job.report(-0.5, "under")
    assert job.fraction == 0.0
