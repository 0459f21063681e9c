"""The live charts' files and the look they carry (hamu_ui.live_charts), without a browser.

The browser test (tests/browser/test_flow.py) checks that the charts update in place.
"""

import json

import plotly.io as pio

from hamu_ui.live_charts import PAGE, PLOTLY_JS, TEMPLATE, TEMPLATE_KEYS, component_folder, template_json


def test_the_component_folder_serves_the_page_and_the_installed_plotly_js():
    folder = component_folder()
    assert (folder / "index.html").read_bytes() == PAGE.read_bytes()
    assert (folder / "plotly.min.js").read_bytes() == PLOTLY_JS.read_bytes()
    assert 'src="plotly.min.js"' in PAGE.read_text()  # nothing fetched from the network
    assert component_folder() == folder  # copied once per process


def test_the_template_keeps_only_the_2d_layout_defaults_of_the_figures_look():
    sent = json.loads(template_json())
    full = pio.templates[TEMPLATE].to_plotly_json()
    assert set(sent) == {"layout"} and set(sent["layout"]) <= set(TEMPLATE_KEYS)
    assert sent["layout"]["xaxis"] == full["layout"]["xaxis"]  # axes look the same
    assert sent["layout"]["xaxis"]["automargin"] is True  # tick labels keep their room
    assert len(template_json()) < len(json.dumps(full)) / 2
