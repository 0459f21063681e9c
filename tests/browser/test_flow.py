"""End to end in a real browser: choose digits, lasso a forget set, step five times, download the report, reload.

Waits are on what the app shows (Streamlit's running indicator gone, the app's own text
present), never on sleeps. Each page is photographed into artifacts/screenshots/ (git-
ignored); only with ``HAMU_UPDATE_SCREENSHOTS=1`` are the pictures also copied into assets/
for the README, so a test run never changes the tracked tree.
"""

import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]

STEPS = 5
LIVE_CHARTS = "iframe[title='hamu_ui.live_charts.live_charts']"
# The step count every live chart shows (layout.meta.steps), read inside the charts' frame.
CHART_STEPS = """() => {
  const frame = document.querySelector("FRAME");
  const doc = frame && frame.contentDocument;
  return doc ? [...doc.querySelectorAll('.js-plotly-plot')].map(gd => gd._fullLayout && gd._fullLayout.meta
                                                                   ? gd._fullLayout.meta.steps : null) : [];
}""".replace("FRAME", LIVE_CHARTS)


def settled(page: Page) -> None:
    """Wait until Streamlit has finished running the script (its status widget is gone)."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)


def snapshot(page: Page, folder, name: str) -> None:
    settled(page)
    page.wait_for_function("() => [...document.images].every(image => image.complete)")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("HAMU_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, ROOT / "assets" / f"screenshot-{name}.png")


def charts_show(page: Page, steps: int, count: int = 4) -> None:
    """Wait until ``count`` live charts are drawn and every one shows ``steps`` steps."""
    page.wait_for_function(f"() => {{ const s = ({CHART_STEPS})(); "
                           f"return s.length === {count} && s.every(k => k === {steps}); }}")


def untick_stop_rules(page: Page) -> None:
    """Turn the run-level stop rules off, so every press steps."""
    for rule in ("Stop when the retrain reference is reached", "Stop when degradation becomes unavoidable"):
        page.get_by_text(rule).click()
        settled(page)


def lasso(page: Page, chart) -> None:
    """Drag a closed polygon over the middle of a plotly chart (its default drag tool is the lasso)."""
    box = chart.locator(".nsewdrag").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    w, h = box["width"], box["height"]
    corners = [(cx - 0.3 * w, cy - 0.3 * h), (cx + 0.05 * w, cy - 0.35 * h), (cx + 0.1 * w, cy + 0.05 * h),
               (cx - 0.1 * w, cy + 0.15 * h), (cx - 0.35 * w, cy + 0.05 * h)]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for x, y in corners[1:] + corners[:1]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_lasso_then_step_five_times(page: Page, studio_url, screenshot_dir):
    page.goto(studio_url)
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.get_by_test_id("stSelectbox").filter(has_text="Built-in dataset").click()
    page.get_by_role("option", name="digits", exact=True).click()
    expect(page.get_by_text("Original model ready")).to_be_visible()
    snapshot(page, screenshot_dir, "setup")

    page.get_by_role("link", name="Forget set").click()
    expect(page.get_by_role("heading", name="Forget set: 0 samples")).to_be_visible()
    chart = page.get_by_test_id("stPlotlyChart").first
    expect(chart.locator(".nsewdrag").first).to_be_visible()
    lasso(page, chart)
    count = page.get_by_role("heading", name=re.compile(r"^Forget set: [1-9]\d* samples$"))
    expect(count).to_be_visible()
    forgotten = int(re.search(r"\d+", count.inner_text()).group())
    expect(page.get_by_test_id("stSidebar").get_by_text(f"forget set: {forgotten} samples")).to_be_visible()
    expect(page.get_by_role("heading", name="Nearest retain neighbours")).to_be_visible()
    expect(page.get_by_test_id("stImage")).to_have_count(7)  # the selected sample, one forget sample, 5 neighbours
    snapshot(page, screenshot_dir, "forget_set")

    page.get_by_role("link", name="Unlearn").click()
    expect(page.get_by_text("Trade-off path: 0 points")).to_be_visible()
    untick_stop_rules(page)  # a teacher steps through: every press takes a step
    charts_show(page, 0)
    page.evaluate(f"() => document.querySelector(\"{LIVE_CHARTS}\").contentDocument"
                  ".querySelectorAll('.js-plotly-plot').forEach(gd => {{ gd.dataset.first = 'yes'; }})")
    step = page.get_by_role("button", name="Step", exact=True)
    for k in range(1, STEPS + 1):
        step.click()
        expect(page.get_by_text(f"Trade-off path: {k} points")).to_be_visible()
        charts_show(page, k)
    kept = page.evaluate(f"() => [...document.querySelector(\"{LIVE_CHARTS}\").contentDocument"
                         ".querySelectorAll('.js-plotly-plot')].filter(gd => gd.dataset.first === 'yes').length")
    assert kept == 4  # every chart was updated in place, never drawn anew
    page.get_by_role("heading", name="Unlearn").hover()  # move the pointer off the button: no tooltip
    page.evaluate("document.activeElement && document.activeElement.blur()")
    expect(page.get_by_role("tooltip")).to_have_count(0)
    expect(page.get_by_test_id("stSidebar").get_by_text(f"HAMU-Q, {STEPS} steps")).to_be_visible()
    # the hardness diagram's latest step, in its legend
    legend = page.frame_locator(LIVE_CHARTS).locator("text.legendtext")
    expect(legend.filter(has_text=re.compile(rf"^step {STEPS}$"))).to_be_visible()
    snapshot(page, screenshot_dir, "unlearn")
    expect(page).to_have_url(re.compile(r"[?&]run=[0-9a-f]{32}"))
    run_id = re.search(r"run=([0-9a-f]{32})", page.url).group(1)

    page.get_by_role("link", name="Report").click()
    described = re.compile(rf"This report describes step \d+ of {STEPS} HAMU-Q steps")
    expect(page.get_by_text(described)).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/report\?run={run_id}$"))
    with page.expect_download() as info:
        page.get_by_role("button", name="Report (HTML)").click()
    html = Path(info.value.path()).read_text(encoding="utf-8")
    assert info.value.suggested_filename == f"hamu-run-{run_id}.html"
    assert html.startswith("<!DOCTYPE html>") and "Verdict" in html and "Trade-off path" in html
    page.get_by_role("heading", name="Report", exact=True).hover()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    expect(page.get_by_role("tooltip")).to_have_count(0)
    snapshot(page, screenshot_dir, "report")

    page.reload()  # a new Streamlit session: only the URL remembers the run
    expect(page.get_by_text(described)).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text(f"HAMU-Q, {STEPS} steps")).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text(f"forget set: {forgotten} samples")).to_be_visible()
    page.get_by_role("link", name="Unlearn").click()
    expect(page.get_by_text(f"Trade-off path: {STEPS} points")).to_be_visible()


def test_a_random_five_percent_request_ends_with_nothing_to_do(page: Page, studio_url):
    """The everyday request of a data-protection officer, clicked through as they would."""
    page.goto(studio_url)
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.get_by_role("link", name="Forget set").click()
    page.get_by_role("tab", name="Random").click()
    page.locator(".st-key-forget-random-replace button").click()
    expect(page.get_by_role("heading", name="Forget set: 72 samples")).to_be_visible()

    page.get_by_role("link", name="Unlearn").click()
    expect(page.get_by_text("Nothing to do.")).to_be_visible()
    page.get_by_role("button", name="Step", exact=True).click()
    stopped = re.compile(r"Stopped: nothing to do: on the forget set the original model already behaves like")
    expect(page.get_by_text(stopped)).to_be_visible()
    expect(page.get_by_text("Trade-off path: 0 points")).to_be_visible()

    page.get_by_role("link", name="Report").click()
    expect(page.get_by_text(re.compile(r"Nothing to do: on the forget set the original model already behaves like"))).to_be_visible()
    with page.expect_download() as info:
        page.get_by_role("button", name="Report (HTML)").click()
    html = Path(info.value.path()).read_text(encoding="utf-8")
    assert "nothing to do" in html and "Verdict" in html


def forget_class_3_and_run_20(page: Page, studio_url: str) -> None:
    """Open the Studio, choose digit class 3 as the forget set, and take 20 HAMU-Q steps on Unlearn."""
    page.goto(studio_url)
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.get_by_role("link", name="Forget set").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Class").first.click()
    page.get_by_role("option", name="3", exact=True).click()
    page.locator(".st-key-forget-class-replace button").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Forget set: [1-9]\d* samples$"))).to_be_visible()
    page.get_by_role("link", name="Unlearn").click()
    page.get_by_role("button", name="Run 20").click()
    expect(page.get_by_text("Trade-off path: 20 points")).to_be_visible()


def test_a_privacy_audit_runs_from_the_inspect_page_and_reads_in_words(page: Page, studio_url):
    """A data-protection officer's question, asked in the browser: could someone still tell?"""
    forget_class_3_and_run_20(page, studio_url)

    page.get_by_role("link", name="Inspect").click()
    shadows = page.get_by_role("combobox", name="Shadow models")
    shadows.scroll_into_view_if_needed()  # far down a long page: opened in place, the list stays open
    shadows.click()
    page.get_by_role("option", name=re.compile(r"^4 ")).click()
    page.get_by_role("button", name="Run the privacy audit").click()
    verdict = page.get_by_text(re.compile(r"^Strongest attack: "))
    expect(verdict).to_be_visible()
    sentence = verdict.locator("xpath=..").inner_text()
    assert re.search(r"\[\d", sentence), sentence  # the verdict carries its interval
    expect(page.get_by_text(re.compile(r"ROC on log-log axes"))).to_be_visible()


def test_two_requests_in_sequence_then_the_report_lists_both(page: Page, studio_url):
    """Issue 11: requests answered one after another on the Requests page, then filed with the report."""
    forget_class_3_and_run_20(page, studio_url)

    page.get_by_role("link", name="Requests").click()
    box = page.get_by_role("textbox", name="Requests, one per line")
    box.fill("class 3\nrandom 0.05")
    box.press("Control+Enter")  # commit the text before the button reruns the page
    settled(page)
    page.get_by_role("button", name="Answer the requests").click()
    expect(page.get_by_text("2 requests answered")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Request 2 \(random 0\.05\): unlearning took"))).to_be_visible()

    page.get_by_role("link", name="Report").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="Report (HTML)").click()
    html = Path(info.value.path()).read_text(encoding="utf-8")
    assert "Request ledger" in html and "<td>class 3</td>" in html and "<td>random 0.05</td>" in html


def test_run_n_redraws_as_it_goes_and_pause_ends_it(page: Page, studio_url):
    """Run N shows its progress and moves the charts while it runs; Pause ends it short of N."""
    page.goto(studio_url)
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.get_by_role("link", name="Forget set").click()
    page.locator(".st-key-forget-class-replace button").click()  # the Class tab's first class
    expect(page.get_by_role("heading", name=re.compile(r"^Forget set: [1-9]\d* samples$"))).to_be_visible()
    page.get_by_role("link", name="Unlearn").click()
    expect(page.get_by_text("Trade-off path: 0 points")).to_be_visible()
    untick_stop_rules(page)
    charts_show(page, 0)
    page.locator(".st-key-unlearn-n input").fill("300")
    page.locator(".st-key-unlearn-n input").press("Enter")
    settled(page)
    page.get_by_role("button", name="Run 300").click()
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    page.wait_for_function(f"() => {{ const s = ({CHART_STEPS})(); "
                           "return s.length === 4 && s.every(k => k > 0 && k < 300); }")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Play", exact=True)).to_be_visible()
    settled(page)
    shown = page.evaluate(CHART_STEPS)
    assert len(set(shown)) == 1 and 0 < shown[0] < 300, shown
    expect(page.get_by_text(f"Trade-off path: {shown[0]} points")).to_be_visible()
