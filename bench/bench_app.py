"""The Studio as a person meets it, timed in a real headless browser (issue 4, bench/).

(a) Cold start: from launching ``streamlit run app.py`` to a usable first page, i.e. the
    Setup page's dataset picker visible and Streamlit's script finished (its running
    indicator gone). Also shown: when the server first answered its health check, and
    when the original model was ready (read from the disk cache of
    ``hamu_core.models.checkpoint`` when an earlier run trained it, as on a second start).
(b) Step latency: on the Unlearn page with one digits class forgotten (HAMU-Q defaults),
    the time from pressing Step to the updated charts: the trade-off path's count showing one
    more point, and then Streamlit's script finished. Median and spread over ``--presses``.

The server and the browser are started exactly as the browser tests start them
(``tests/browser/conftest.py``). Each wait polls the page on every animation frame, so the
times resolve to about one frame plus a round trip to the browser. Asserts nothing.
Run: ``python bench/bench_app.py [--presses 10]`` (Debian's /usr/bin/chromium required).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import WAIT_MS, launch_chromium, running_studio  # noqa: E402

COLD_START_GOAL_S = 8.0
STEP_GOAL_MS = 300.0
FINISHED = "() => document.querySelector('[data-testid=\"stStatusWidget\"]') === null"


def wait_js(page: Page, expression: str, arg=None) -> None:
    """Poll ``expression`` in the page on every animation frame until it is true."""
    page.wait_for_function(expression, arg=arg, polling="raf", timeout=WAIT_MS)


def shows_text(page: Page, text: str) -> None:
    wait_js(page, "text => document.body.innerText.includes(text)", text)


def cold_start(browser, log: Path) -> dict[str, float]:
    """Seconds from ``streamlit run`` to health, to a usable Setup page, and to the model being ready."""
    start = time.perf_counter()
    with running_studio(log) as url:
        healthy = time.perf_counter() - start
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        shows_text(page, "Built-in dataset")
        wait_js(page, FINISHED)
        usable = time.perf_counter() - start
        shows_text(page, "Original model ready")
        ready = time.perf_counter() - start
        page.close()
    return {"healthy": healthy, "usable": usable, "model_ready": ready}


def step_latencies(browser, log: Path, presses: int) -> list[tuple[float, float]]:
    """(ms to the new trade-off count, ms to the script finished) for each Step press."""
    with running_studio(log) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        shows_text(page, "Original model ready")
        page.get_by_role("link", name="Forget set").click()
        shows_text(page, "Forget set: 0 samples")
        wait_js(page, FINISHED)
        page.get_by_role("button", name="Replace forget set").first.click()  # the Class tab: class 0
        wait_js(page, "() => /Forget set: [1-9]\\d* samples/.test(document.body.innerText)")
        wait_js(page, FINISHED)
        page.get_by_role("link", name="Unlearn").click()
        shows_text(page, "Trade-off path: 0 points")
        wait_js(page, FINISHED)
        step = page.get_by_role("button", name="Step", exact=True)
        step.wait_for()
        times = []
        for k in range(1, presses + 2):  # the first press is a warm-up (first step's imports and caches)
            t0 = time.perf_counter()
            step.click()
            shows_text(page, f"Trade-off path: {k} points")
            charted = time.perf_counter() - t0
            wait_js(page, FINISHED)
            finished = time.perf_counter() - t0
            if k > 1:
                times.append((1e3 * charted, 1e3 * finished))
        page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=10, help="timed Step presses (after one warm-up)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch_chromium(playwright)  # started before the clock: the browser is not the app
        cold = cold_start(browser, Path(tmp) / "cold.log")
        steps = step_latencies(browser, Path(tmp) / "steps.log", args.presses)
        browser.close()
    charted = [c for c, _ in steps]
    finished = [f for _, f in steps]
    print(f"{'measure':<44} {'value':>10} {'goal':>8}")
    print(f"{'cold start: server healthy':<44} {cold['healthy']:>9.2f}s {'':>8}")
    print(f"{'cold start: Setup page usable':<44} {cold['usable']:>9.2f}s {COLD_START_GOAL_S:>7.0f}s")
    print(f"{'cold start: original model ready':<44} {cold['model_ready']:>9.2f}s {'':>8}")
    print(f"{'Step -> trade-off path updated (median)':<44} {statistics.median(charted):>8.0f}ms "
          f"{STEP_GOAL_MS:>6.0f}ms")
    print(f"{'Step -> script finished (median)':<44} {statistics.median(finished):>8.0f}ms {'':>8}")
    print(f"{'Step -> trade-off path updated (min / max)':<44} {min(charted):>4.0f}/{max(charted):.0f}ms")
    print(f"presses timed: {len(steps)} (after one warm-up); ratio to goals: cold start "
          f"{cold['usable'] / COLD_START_GOAL_S:.2f}, step {statistics.median(charted) / STEP_GOAL_MS:.2f}")


if __name__ == "__main__":
    main()
