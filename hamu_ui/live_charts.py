"""The Unlearn page's live charts, updated in place in the browser.

``st.plotly_chart`` gives a changed figure a new element identity, so on every step the
browser tears each chart down and plots it from scratch: with four charts that was most of
the time from a Step press to the charts redrawn (``bench/bench_app.py``). This component
keeps one frame, with one plot per chart, for the life of the panel and hands every new
set of figures to ``Plotly.react``, which updates each plot in place.

Its files are a small page (``live_charts.html``, beside this module) and the plotly.js that
the installed ``plotly`` package ships; both are copied once into a folder of their own,
because Streamlit serves a component only from one folder. Nothing is fetched from the
network.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit.components.v1 as components

PAGE = Path(__file__).with_name("live_charts.html")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
TEMPLATE = "plotly_white"  # the figures' look (hamu_ui.figures); only its 2-D layout defaults travel
TEMPLATE_KEYS = ("autotypenumbers", "colorway", "font", "hovermode", "hoverlabel", "paper_bgcolor", "plot_bgcolor",
                 "xaxis", "yaxis", "shapedefaults", "annotationdefaults", "title")


@functools.cache
def component_folder() -> Path:
    """The folder the component is served from: the page and plotly.js, copied once per version.

    Kept in the temp folder, named by plotly's version and the page's size and time, so a
    changed page or plotly gets a fresh folder; each file is written under a temporary name
    and renamed, so two processes starting at once never serve a half-written file.
    """
    stamp = f"{plotly.__version__}-{PAGE.stat().st_size}-{int(PAGE.stat().st_mtime)}"
    folder = Path(tempfile.gettempdir()) / f"hamu-live-charts-{os.getuid()}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    for source, name in ((PAGE, "index.html"), (PLOTLY_JS, "plotly.min.js")):
        target = folder / name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
    return folder


@functools.cache
def template_json() -> str:
    """``TEMPLATE``'s layout defaults that 2-D charts use (axes, grid, fonts), as JSON text.

    A whole template also holds defaults for every trace type and for 3-D, polar and map
    charts: four fifths of each chart's message, sent for every chart on every step.
    """
    layout = pio.templates[TEMPLATE].to_plotly_json()["layout"]
    return pio.to_json({"layout": {k: v for k, v in layout.items() if k in TEMPLATE_KEYS}}, validate=False)


def live_charts(figures: list[go.Figure], *, key: str, columns: int = 2) -> None:
    """Draw ``figures`` in a grid of ``columns``; on later runs with the same ``key`` they update in place.

    Each figure travels as its JSON text (plotly's own encoder, which knows numpy arrays),
    and the frame parses it. The figures give up their named template on the way (they are
    the caller's to give away); the frame applies ``template_json`` instead, sent once per
    run for all of them. Declared on every call: each Streamlit runtime (a server, or an
    ``AppTest``) keeps its own registry, and declaring the same folder again is free.
    """
    for figure in figures:
        figure.layout.template = None
    draw = components.declare_component("live_charts", path=str(component_folder()))
    draw(charts=[pio.to_json(figure, validate=False) for figure in figures], template=template_json(),
         columns=columns, key=key, default=None)
