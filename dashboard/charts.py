"""Plotly charts redrawn in place: a new figure is one `Plotly.react` on the same <div>.

`st.plotly_chart` cost the browser about 0.3 CPU-s to redraw one small figure here, per
epoch of a watched run (bench/redraw_cost.py); `Plotly.react` on a chart that is already
drawn costs about 0.06, because nothing is mounted again (issue 23, docs/benchmarks.md
"Watching costs"). So every chart of the dashboard is drawn by one small
`st.components.v2` component, in the page's own DOM (a plain `.js-plotly-plot`, as
before), with the plotly.js that the `plotly` package ships: the same file the offline
report embeds, served by Streamlit from that package's folder through a v1 component
declared for nothing else. The chart takes the page's font; the figure keeps its own look
(`analysis.figures.PLAIN`), so a chart here and in the report are the same chart.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import plotly
import plotly.graph_objects as go
from streamlit.components import v1 as components_v1
from streamlit.components import v2 as components_v2

from dashboard import state

_PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"  # holds plotly.min.js
_PLOTLY_FILES = components_v1.declare_component("plotlyjs", path=str(_PLOTLY_DIR))  # only serves the file

# Runs on every rerun that draws the chart: loads plotly.js once per tab, then redraws in
# place; a figure identical to the one drawn (a rerun for some other reason) costs nothing.
_JS = """
export default function (component) {
  const { parentElement, data } = component;
  window.__plotlyReady = window.__plotlyReady || new Promise((ok, fail) => {
    if (window.Plotly) return ok();
    const script = document.createElement("script");
    script.src = data.src; script.onload = ok; script.onerror = fail;
    document.head.appendChild(script);
  });
  let chart = parentElement.querySelector("div.dashboard-chart");
  if (!chart) {
    chart = document.createElement("div");
    chart.className = "dashboard-chart";
    parentElement.appendChild(chart);
  }
  if (chart.drawnFigure === data.figure) return;
  chart.drawnFigure = data.figure;
  window.__plotlyReady.then(() => {
    const figure = JSON.parse(data.figure);
    const font = getComputedStyle(parentElement).fontFamily;
    figure.layout.font = Object.assign({family: font}, figure.layout.font || {});
    window.Plotly.react(chart, figure.data, figure.layout, {responsive: true, displaylogo: false});
  }, () => {
    window.__plotlyReady = null;  // the next redraw tries again
    chart.drawnFigure = null;
    chart.textContent = "The chart could not load plotly.js from " + data.src + ".";
  });
}
"""
_CHART = components_v2.component("dashboard.chart", js=_JS, isolate_styles=False)


def plotly_src() -> str:
    """Where the browser fetches plotly.js: the app's base path, then the component route."""
    return state.url_path(f"/component/{_PLOTLY_FILES.name}/plotly.min.js")


def plotly_chart(figure: go.Figure, key: str, where=None) -> None:
    """Draw `figure` in `where` (a column or container; default: here). A later rerun with a
    changed figure redraws the same chart, found by `key`, in place."""
    with where if where is not None else contextlib.nullcontext():
        _CHART(key=key, data={"figure": figure.to_json(), "src": plotly_src()})
