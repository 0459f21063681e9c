"""In a real browser (issue 14): two hostile uploads in a row, then the earlier run steps on; nothing is lost.

A pixel bomb and an NPZ declaring an impossible shape are uploaded through the Setup
page's own file input. Each must be refused in one line naming its rule, with no
traceback anywhere on the page, and the run taken before them must still be there and
still step. Screenshots go to the git-ignored artifacts/ folder only.
"""

import re

from playwright.sync_api import Page, expect

from tests.browser.test_flow import settled, untick_stop_rules
from tests.hostile_files import HOSTILE

STEPS = 2


def sidebar_run(page: Page, steps: int):
    return page.get_by_test_id("stSidebar").get_by_text(f"HAMU-Q, {steps} steps")


def test_two_hostile_uploads_then_the_earlier_run_steps_on(page: Page, studio_url, screenshot_dir):
    page.goto(studio_url)
    expect(page.get_by_text("Original model ready")).to_be_visible()
    page.get_by_role("link", name="Forget set").click()
    page.locator(".st-key-forget-class-replace button").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Forget set: [1-9]\d* samples$"))).to_be_visible()
    forgotten = re.search(r"forget set: (\d+) samples", page.get_by_test_id("stSidebar").inner_text()).group(1)

    page.get_by_role("link", name="Unlearn").click()
    expect(page.get_by_text("Trade-off path: 0 points")).to_be_visible()
    untick_stop_rules(page)  # every press takes a step
    settled(page)
    for k in range(1, STEPS + 1):
        page.get_by_role("button", name="Step", exact=True).click()
        expect(page.get_by_text(f"Trade-off path: {k} points")).to_be_visible()
    expect(sidebar_run(page, STEPS)).to_be_visible()

    page.get_by_role("link", name="Setup").click()
    expect(page.get_by_text("Original model ready")).to_be_visible()
    previous = None
    for kind in ("pixel-bomb", "impossible-shape"):
        filename, build, rule = HOSTILE[kind]
        if previous is not None:
            # Between the two, the user looks at another page and comes back, so the uploader starts empty:
            # Streamlit's swap of one file for another inside one uploader sometimes ends without a rerun
            # (seen in CI, and with two sessions; the server had the file), which is Streamlit's, not the rule's.
            page.get_by_role("link", name="Report").click()
            settled(page)
            page.get_by_role("link", name="Setup").click()
            expect(page.get_by_text("Original model ready")).to_be_visible()
            expect(page.get_by_role("button", name=f"Remove {previous}")).to_have_count(0)
            settled(page)
        previous = filename
        page.locator(".st-key-setup-upload input[type=file]").set_input_files(
            {"name": filename, "mimeType": "application/octet-stream", "buffer": build()})
        refusal = page.get_by_test_id("stAlert").filter(has_text=f"{filename} cannot be used")
        expect(refusal).to_be_visible()
        assert re.search(rule, refusal.inner_text().replace("\n", " ")), refusal.inner_text()
        settled(page)
        assert "Traceback" not in page.inner_text("body")
        expect(page.get_by_test_id("stSidebar").get_by_text("data: digits")).to_be_visible()
        page.screenshot(path=str(screenshot_dir / f"hostile-{kind}.png"))

    expect(page.get_by_test_id("stSidebar").get_by_text(f"forget set: {forgotten} samples")).to_be_visible()
    expect(sidebar_run(page, STEPS)).to_be_visible()
    page.get_by_role("link", name="Unlearn").click()
    expect(page.get_by_text(f"Trade-off path: {STEPS} points")).to_be_visible()
    page.get_by_role("button", name="Step", exact=True).click()
    expect(page.get_by_text(f"Trade-off path: {STEPS + 1} points")).to_be_visible()
    expect(sidebar_run(page, STEPS + 1)).to_be_visible()
    assert "Traceback" not in page.inner_text("body")
