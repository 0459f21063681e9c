"""The Studio as a person meets it, timed in a real headless browser (issues 4 and 12, bench/).

(a) Cold start: from launching ``streamlit run app.py`` to a usable first page, i.e. the
    Setup page's dataset picker visible and Streamlit's script finished (its running
    indicator gone). Also shown: when the server first answered its health check, and
    when the original model was ready (read from the disk cache of
    ``hamu_core.models.checkpoint`` when an earlier run trained it, as on a second start).
(b) Step → every chart redrawn, clocked *in the page*: a listener installed before the
    press notes the click's time, and a check run on every animation frame stops the clock
    once every live chart of the Unlearn page (each carries its step count in
    ``layout.meta.steps``) shows the new step and one more frame has been painted. A text
    that changes first does not stop it. Median and spread over ``--presses``, with the
    machine idle and with ``--burners`` processes spinning beside it ("loaded").
(c) Run 20: from the click to the first progress shown (a progress bar or a chart that moved)
    and to all 20 steps on every chart. Pause: Play is pressed, and once the charts moved
    Pause is pressed; reported are the steps taken after that click and the time until the
    button reads Play again.

The server and the browser are started exactly as the browser tests start them
(``tests/browser/conftest.py``). Asserts nothing; prints each measure beside its goal.
Run: ``python bench/bench_app.py [--presses 10] [--burners 2] [--skip-cold]``
(Debian's /usr/bin/chromium required).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
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
STEP_GOAL_MS = {"idle": 300.0, "loaded": 1000.0}
FINISHED = "() => document.querySelector('[data-testid=\"stStatusWidget\"]') === null"
SETTLE_S = 2.0  # after Pause, how long the step count must stay put to count as stopped

# Shared by the clocks below: the step count every live chart shows (null while one is missing).
# Charts are looked for in the page and in its frames (the live charts draw in one of their own).
CHART_STEPS = """
window.__charts = () => [document, ...[...document.querySelectorAll('iframe')].map(f => f.contentDocument)]
  .filter(doc => doc)
  .flatMap(doc => [...doc.querySelectorAll('.js-plotly-plot')])
  .filter(gd => gd._fullLayout && gd._fullLayout.meta && gd._fullLayout.meta.steps !== undefined);
window.__chartSteps = () => {
  const charts = window.__charts();
  return charts.length < window.__chartCount ? null : charts.map(gd => gd._fullLayout.meta.steps);
};
window.__chartCount = window.__charts().length;
"""

# Starts at the click on the button labelled ``label``; resolves with
# {progress: ms to the first progress bar or moved chart, done: ms to every chart showing ``target``}.
CLOCK = CHART_STEPS + """
([label, target, start]) => {
  window.__clock = new Promise(resolve => {
    let t0 = null, progress = null;
    const tick = () => {
      const now = performance.now(), steps = window.__chartSteps();
      const moved = steps && steps.some(s => s > start);
      const bar = [...document.querySelectorAll('[data-testid="stProgress"]')].some(e => e.innerText.includes(label));
      if (progress === null && (moved || bar)) progress = now - t0;
      if (steps && steps.every(s => s === target)) {
        requestAnimationFrame(() => resolve({progress: progress, done: performance.now() - t0}));
      } else {
        requestAnimationFrame(tick);
      }
    };
    document.addEventListener('click', event => {
      const button = event.target.closest('button');
      if (button && button.innerText.trim() === label && t0 === null) { t0 = performance.now(); tick(); }
    }, {capture: true});
  });
}
"""

# Starts at the click on Pause; resolves with the charts' step count at the click and the ms
# until the button reads Play again.
PAUSE_CLOCK = CHART_STEPS + """
() => {
  window.__clock = new Promise(resolve => {
    let t0 = null, atClick = null;
    const tick = () => {
      const play = [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Play');
      if (play) resolve({atClick: atClick, ms: performance.now() - t0});
      else requestAnimationFrame(tick);
    };
    document.addEventListener('click', event => {
      const button = event.target.closest('button');
      if (button && button.innerText.trim() === 'Pause' && t0 === null) {
        t0 = performance.now();
        atClick = Math.max(...(window.__chartSteps() || [0]));
        tick();
      }
    }, {capture: true});
  });
}
"""


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


def open_unlearn(page: Page, url: str) -> None:
    """Forget digit class 0 and open Unlearn with the run-level stop rules off (every press steps)."""
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
    for rule in ("Stop when the retrain reference is reached", "Stop when degradation becomes unavoidable"):
        page.get_by_text(rule).click()
        wait_js(page, FINISHED)
    wait_js(page, "() => {" + CHART_STEPS + "return window.__chartCount >= 3; }")  # plotly.js loaded, charts drawn


def clocked_click(page: Page, label: str, target: int, start: int) -> dict:
    """Press the button ``label`` and return the in-page clock's {progress, done} in ms."""
    page.evaluate(CLOCK, [label, target, start])
    page.get_by_role("button", name=label, exact=True).click()
    return page.evaluate("window.__clock")


def step_latencies(page: Page, presses: int, first: int) -> list[float]:
    """In-page ms from each Step press to every chart redrawn; press ``first`` is a warm-up."""
    times = []
    for k in range(first, first + presses + 1):
        times.append(clocked_click(page, "Step", k, k - 1)["done"])
        wait_js(page, FINISHED)
    return times[1:]


def run_and_pause(page: Page, start: int) -> dict[str, float]:
    """Run 20 (first progress, total) from step ``start``, then Play and Pause (steps after the click, ms)."""
    run = clocked_click(page, "Run 20", start + 20, start)
    wait_js(page, FINISHED)
    page.evaluate(PAUSE_CLOCK)
    page.get_by_role("button", name="Play", exact=True).click()
    wait_js(page, f"() => Math.min(...(window.__chartSteps() || [0])) >= {start + 22}")
    page.get_by_role("button", name="Pause", exact=True).click()
    paused = page.evaluate("window.__clock")
    wait_js(page, FINISHED)
    final = page.evaluate("Math.max(...window.__chartSteps())")
    deadline = time.monotonic() + SETTLE_S  # the bench, not a test, may wait: nothing more should move
    while time.monotonic() < deadline:
        time.sleep(0.1)
        final = max(final, page.evaluate("Math.max(...window.__chartSteps())"))
    return {"run_progress": run["progress"], "run_done": run["done"], "pause_ms": paused["ms"],
            "pause_steps": final - paused["atClick"]}


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def burners(count: int):
    """``count`` processes spinning on the CPU beside the app (the "loaded" machine)."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.join()


def spread(times: list[float]) -> str:
    return f"{min(times):.0f}–{max(times):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=10, help="timed Step presses per condition (after one warm-up)")
    parser.add_argument("--burners", type=int, default=2, help="spinning processes for the loaded condition")
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch_chromium(playwright)  # started before the clock: the browser is not the app
        cold = None if args.skip_cold else cold_start(browser, Path(tmp) / "cold.log")
        with running_studio(Path(tmp) / "steps.log") as url:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(WAIT_MS)
            open_unlearn(page, url)
            idle = step_latencies(page, args.presses, 1)
            done = args.presses + 1
            idle_run = run_and_pause(page, done)
            done = int(page.evaluate("Math.max(...window.__chartSteps())"))
            with burners(args.burners):
                loaded = step_latencies(page, args.presses, done + 1)
                done = int(page.evaluate("Math.max(...window.__chartSteps())"))
                loaded_run = run_and_pause(page, done)
            page.close()
        browser.close()
    print(f"{'measure':<48} {'idle':>12} {'loaded':>12} {'goal':>12}")
    if cold:
        print(f"{'cold start: server healthy (s)':<48} {cold['healthy']:>12.2f}")
        print(f"{'cold start: Setup page usable (s)':<48} {cold['usable']:>12.2f} {'':>12} {COLD_START_GOAL_S:>12.0f}")
        print(f"{'cold start: original model ready (s)':<48} {cold['model_ready']:>12.2f}")
    print(f"{'Step -> every chart redrawn, median (ms)':<48} {statistics.median(idle):>12.0f} "
          f"{statistics.median(loaded):>12.0f} {'300 / 1000':>12}")
    print(f"{'Step -> every chart redrawn, min–max (ms)':<48} {spread(idle):>12} {spread(loaded):>12}")
    print(f"{'Run 20 -> first progress shown (ms)':<48} {idle_run['run_progress']:>12.0f} "
          f"{loaded_run['run_progress']:>12.0f}")
    print(f"{'Run 20 -> 20 steps on every chart (ms)':<48} {idle_run['run_done']:>12.0f} {loaded_run['run_done']:>12.0f}")
    print(f"{'Pause -> button reads Play (ms)':<48} {idle_run['pause_ms']:>12.0f} {loaded_run['pause_ms']:>12.0f}")
    print(f"{'Pause -> steps taken after the click':<48} {idle_run['pause_steps']:>12.0f} "
          f"{loaded_run['pause_steps']:>12.0f} {'<= 1':>12}")
    print(f"presses timed per condition: {len(idle)} (after one warm-up); {args.burners} burners when loaded; "
          f"ratio to goal (median/goal): idle {statistics.median(idle) / STEP_GOAL_MS['idle']:.2f}, "
          f"loaded {statistics.median(loaded) / STEP_GOAL_MS['loaded']:.2f}")


if __name__ == "__main__":
    main()
