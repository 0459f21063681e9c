"""A real Studio server and a real browser for the end-to-end tests.

The server is ``streamlit run app.py`` on a free port, started once per test module and
stopped afterwards; the browser is Debian's Chromium driven by Playwright. A missing
Chromium fails the tests (it never skips them): ``.ci/run`` installs it.

``running_studio`` and ``launch_chromium`` are plain functions so that ``bench/bench_app.py``
starts the server and the browser exactly as the tests do.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_S = 120  # torch and streamlit import slowly on a busy 2-core machine
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
WAIT_MS = 120_000  # longest wait for the app to show something (a cold start trains the models)
expect.set_options(timeout=WAIT_MS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)  # polling the server, not waiting on the page
    raise RuntimeError(f"streamlit did not answer {url}/_stcore/health within {STARTUP_S} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_studio(log: Path) -> Iterator[str]:
    """``streamlit run app.py`` on a free port, its output in ``log``; yields the base URL once healthy."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's headless Chromium under Playwright; a clear error when it is not installed."""
    if not Path(CHROMIUM).is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: the browser tests need Debian's chromium, which `.ci/run` "
                                "installs (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    """Base URL of a Studio server started for this module."""
    with running_studio(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        try:
            instance = launch_chromium(playwright)
        except FileNotFoundError as missing:
            pytest.fail(str(missing))
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
