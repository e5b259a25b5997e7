"""A run card's two progress bars, kept up to date by the browser without a Streamlit run.

Between epochs the only thing on the Train page that moves is a running run's batch
progress. Redrawing it with a fragment run every 2 s cost the browser about 0.12 CPU-s
each time, 0.06 cores beside the run it watched (issue 23; docs/benchmarks.md "Watching
costs"). So the bars are one small `st.components.v2` component per card; while its run
is running, it asks the dashboard's own server for the run's bars every `POLL_S`: one GET
of `ROUTE` (`app.py` serves it through `st.App`), a few hundred bytes of JSON read from
the log the server already follows (`dashboard/sharedlogs.py`), two lines of text and two
widths set in place. No script runs and nothing goes over the websocket.

The route reads the log and nothing else: no status, no launcher asked. A status change
(stopping, ended, or a Slurm job the page reconciles) reruns the page anyway, which draws
the card again with what it should now say, or removes it. The words are made once, in
`card_bars`, for the first draw and every answer alike. Where the route is not served
(AppTest, `streamlit run navigation.py`), the Train page redraws the same component from
a ticking fragment instead (`dashboard/live.py`).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from streamlit.components import v2 as components_v2

from dashboard import sharedlogs, state
from training import launch
from training.analysis.display import number
from training.launch import STOP_GRACE_S
from training.store import QUEUED, RUNNING, STOPPING, Run, RunError, RunLog, RunStore, default_runs_dir

ROUTE = "/api/progress"  # ?run=<id>; under server.baseUrlPath when one is set
POLL_S = 1.5  # how often a card asks: an epoch shows within 2 s of being written (issue 23)
# Set by `routes()` in the serving process. An environment variable, not a module global, so
# that it outlives Streamlit reloading this module when a file watcher is on.
SERVED_ENV = "DASHBOARD_PROGRESS_ROUTE"


class Snapshot(NamedTuple):
    """What the bars show of a log, copied out of it (the shared follower stays under its lock)."""
    done: int  # epochs finished
    progress: dict | None  # the latest within-epoch record
    last: dict | None  # the last epoch record
    ended: bool  # the end record is written


def snapshot(log: RunLog) -> Snapshot:
    last = log.epochs[-1] if log.epochs else None
    return Snapshot(log.epochs_done, log.progress, last, log.end is not None)


def card_bars(run: Run, seen: Snapshot, status: str) -> list[dict]:
    """The card's two bars, each {"value": 0–1, "text": ...}: epochs so far, then the epoch under way."""
    planned = run.meta.get("epochs") or 1
    bars = [{"value": min(seen.done / planned, 1.0), "text": f"Epochs: {seen.done} of {planned}"}]
    progress = seen.progress
    if status == STOPPING:
        batch = (0.0, "Stopping: the worker finishes its batch "
                      f"(killed after {STOP_GRACE_S:g} s if it does not)")
    elif status == QUEUED:
        batch = (0.0, f"Queued: {launch.queued_note(run)}")
    elif progress:
        batch = (min(progress["batch"] / max(progress["batches"], 1), 1.0),  # the schema allows 0 batches
                 f"Epoch {progress['epoch']}: batch {progress['batch']} of {progress['batches']} · "
                 f"{number(progress.get('samples_per_s'), ',.0f')} samples/s so far")
    elif seen.last:
        batch = (0.0, f"Epoch {seen.done + 1} starting · last epoch "
                      f"{number(seen.last.get('samples_per_s'), ',.0f')} samples/s, "
                      f"val accuracy {number(seen.last.get('val_accuracy'), '.4f')}")
    else:
        batch = (0.0, "Starting: loading TensorFlow, MNIST and the model")
    return [*bars, {"value": batch[0], "text": batch[1]}]


def served() -> bool:
    """Whether this server answers `ROUTE`, so the cards can ask it themselves."""
    return bool(os.environ.get(SERVED_ENV))


def routes() -> list:
    """The Starlette routes app.py adds to Streamlit's own: only `ROUTE`, read-only. Call it
    once the configuration is loaded (`streamlit run app.py` loads it before importing app.py)."""
    from starlette.routing import Route  # Streamlit's own server; imported only where it serves

    path = state.url_path(ROUTE)
    os.environ[SERVED_ENV] = path
    return [Route(path, _answer, methods=["GET"])]


def _answer(request):
    """GET ROUTE?run=<id>: that run's bars as a running run's, and whether its log has ended.
    A plain function, so Starlette runs it in its thread pool: reading never holds up the
    websocket. Errors say what, never where (no paths of the server)."""
    from starlette.responses import JSONResponse

    headers = {"Cache-Control": "no-store"}
    try:
        run = RunStore(default_runs_dir()).open(request.query_params.get("run", ""))  # checks the id
        seen = sharedlogs.read(run.metrics_path, snapshot)
        bars = card_bars(run, seen, RUNNING)
    except RunError:  # an invalid id, or a run deleted meanwhile: the card stops asking
        return JSONResponse({"error": "no such run"}, status_code=404, headers=headers)
    except OSError:  # a file that cannot be read just now: the card asks again
        return JSONResponse({"error": "the run cannot be read just now"}, status_code=503, headers=headers)
    return JSONResponse({"bars": bars, "ended": seen.ended}, headers=headers)


# Runs whenever the card is drawn with new data: draws the bars, then, given a `url`, asks
# it again `poll_ms` after each answer (not while the tab is hidden) until the log ends,
# the run is gone, or the card is drawn again or removed. Each draw has its own generation:
# an answer or a cleanup of an earlier draw does nothing to a later one.
_JS = """
export default function (component) {
  const { parentElement, data } = component;
  let box = parentElement.querySelector("div.run-progress");
  if (!box) {
    box = document.createElement("div");
    box.className = "run-progress";
    parentElement.appendChild(box);
  }
  const draw = (bars) => {
    while (box.children.length < bars.length) {
      const bar = document.createElement("div");
      bar.className = "run-progress-bar";
      bar.innerHTML = '<p></p><div class="track" role="progressbar" aria-valuemin="0" ' +
                      'aria-valuemax="100"><div class="fill"></div></div>';
      box.appendChild(bar);
    }
    bars.forEach((bar, i) => {
      const row = box.children[i];
      const percent = Math.round(100 * Math.max(0, Math.min(1, Number(bar.value) || 0)));
      row.querySelector("p").textContent = String(bar.text);  // text, never markup
      row.querySelector(".track").setAttribute("aria-valuenow", percent);
      row.querySelector(".fill").style.width = percent + "%";
    });
  };
  const generation = box.generation = (box.generation || 0) + 1;
  const current = () => box.generation === generation;
  clearTimeout(box.timer);
  draw(data.bars);
  if (!data.url) return;
  const later = () => { if (current()) box.timer = setTimeout(ask, data.poll_ms); };
  const ask = () => {
    if (!current()) return;
    if (document.hidden) return later();
    fetch(data.url, {cache: "no-store"}).then((answer) => {
      if (answer.status === 404) return null;  // the run is gone: the page reruns for that
      return answer.ok ? answer.json().then((body) => body, () => ({})) : {};
    }).then((body) => {
      if (!body || !current()) return;
      if (Array.isArray(body.bars)) draw(body.bars);
      if (!body.ended) later();
    }, later);  // the server restarting: ask again
  };
  later();
  return () => { if (current()) { box.generation += 1; clearTimeout(box.timer); } };
}
"""
_CSS = """
.run-progress-bar p { margin: 0.25rem 0 0.25rem 0; font-size: 0.875rem; }
.run-progress-bar .track { height: 0.5rem; border-radius: 0.25rem; overflow: hidden;
  background: var(--st-secondary-background-color); }
.run-progress-bar .fill { height: 100%; background: var(--st-primary-color); }
.run-progress-bar + .run-progress-bar { margin-top: 0.5rem; }
"""
_BARS = components_v2.component("dashboard.progress", js=_JS, css=_CSS, isolate_styles=False)


def bars(run: Run, log: RunLog, status: str) -> None:
    """Draw the card's bars here; a running run's ask for their own updates where the route is
    served (a queued or stopping run's change only with its status, which reruns the page)."""
    asks = served() and status == RUNNING
    _BARS(key=f"progress_{run.id}", data={
        "bars": card_bars(run, snapshot(log), status),
        "url": f"{state.url_path(ROUTE)}?run={run.id}" if asks else None,  # ids need no escaping
        "poll_ms": int(POLL_S * 1000),
    })
