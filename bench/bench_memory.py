"""The Studio server's memory with four sessions open, and after each session uploads hostile files (issue 14).

Four browser sessions (Chromium contexts) each open the Studio on digits, forget a class
and take two steps, so each holds a live run; then each session uploads a pixel bomb or
an NPZ bomb, in turn (``tests/hostile_files.py``), which must be refused without the
server growing. The server's resident memory (VmRSS) and its peak (VmHWM) are read from /proc
after each phase and printed beside ``CEILING_MB``, with the growth that the hostile
uploads caused as a ratio. Asserts nothing.

The server and the browser are started exactly as the browser tests start them
(``tests/browser/conftest.py``). Run: ``python bench/bench_memory.py [--sessions 4]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import WAIT_MS, launch_chromium, running_studio  # noqa: E402
from tests.browser.test_flow import untick_stop_rules  # noqa: E402
from tests.hostile_files import HOSTILE  # noqa: E402

CEILING_MB = 1500  # the server with four sessions must stay below this (README, "Limits")
HOSTILE_KINDS = ("pixel-bomb", "npz-bomb")


def server_pid(url: str) -> int:
    """The pid of the ``streamlit run`` process serving ``url`` (found by its --server.port argument)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and port.encode() in args:
            return int(proc.name)
    raise RuntimeError(f"no streamlit process serves port {port}")


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of ``pid`` in MB, from /proc/<pid>/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss, hwm = (int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024 for field in ("VmRSS", "VmHWM"))
    return rss, hwm


def open_session(page: Page, url: str) -> None:
    """Digits, class 0 forgotten, two steps taken: a session holding a live run."""
    page.goto(url)
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.get_by_role("link", name="Forget set").click()
    page.locator(".st-key-forget-class-replace button").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Forget set: [1-9]\d* samples$"))).to_be_visible()
    page.get_by_role("link", name="Unlearn").click()
    untick_stop_rules(page)  # every press takes a step
    for k in (1, 2):
        page.get_by_role("button", name="Step", exact=True).click()
        expect(page.get_by_text(f"Trade-off path: {k} points")).to_be_visible()


def upload_hostile(page: Page, filename: str, content: bytes) -> None:
    """One hostile file through the Setup page's uploader, refused in words.

    One file per session: replacing a refused file by another in a second open session
    sometimes left the uploader empty with no rerun although the file reached the server
    (a race in Streamlit's uploader, reported with the bench), which would stall the bench.
    """
    page.bring_to_front()  # a page behind another is throttled by Chromium
    page.get_by_role("link", name="Setup").click()
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.locator(".st-key-setup-upload input[type=file]").set_input_files(
        {"name": filename, "mimeType": "application/octet-stream", "buffer": content})
    expect(page.get_by_test_id("stAlert").filter(has_text=f"{filename} cannot be used")).to_be_visible()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args()
    files = {HOSTILE[kind][0]: HOSTILE[kind][1]() for kind in HOSTILE_KINDS}
    rows = []
    with tempfile.TemporaryDirectory() as folder, running_studio(Path(folder) / "server.log") as url:
        pid = server_pid(url)
        rows.append(("server started, no session", *memory_mb(pid)))
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            pages = []
            for k in range(args.sessions):
                page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
                page.set_default_timeout(WAIT_MS)
                open_session(page, url)
                pages.append(page)
                rows.append((f"{k + 1} session(s), each with a 2-step run", *memory_mb(pid)))
            names = list(files)
            for k, page in enumerate(pages):
                upload_hostile(page, names[k % len(names)], files[names[k % len(names)]])
            rows.append((f"after {len(pages)} hostile uploads ({', '.join(names)})", *memory_mb(pid)))
            for page in pages:
                page.bring_to_front()
                page.get_by_role("link", name="Unlearn").click()
                page.get_by_role("button", name="Step", exact=True).click()
                expect(page.get_by_text("Trade-off path: 3 points")).to_be_visible()
            rows.append(("every run stepped once more", *memory_mb(pid)))
            browser.close()
    print(f"{'phase':<44} {'RSS MB':>8} {'peak MB':>8} {'RSS / ceiling':>14}")
    for phase, rss, hwm in rows:
        print(f"{phase:<44} {rss:8.0f} {hwm:8.0f} {rss / CEILING_MB:14.2f}")
    before, after = rows[args.sessions][1], rows[args.sessions + 1][1]
    print(f"ceiling {CEILING_MB} MB; hostile uploads changed RSS by {after - before:+.0f} MB "
          f"(after / before = {after / before:.3f}); peak / ceiling = {max(r[2] for r in rows) / CEILING_MB:.2f}")


if __name__ == "__main__":
    main()
