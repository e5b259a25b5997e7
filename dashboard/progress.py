"""A run card's two progress bars, kept up to date by the browser without a Streamlit run.

Between epochs the only thing on the Train page that moves is a running run's batch
progress. Redrawing it with a fragment run every 2 s cost the browser about 0.12 CPU-s
each time, 0.06 cores beside the run it watched (issue 23; docs/benchmarks.md "Watching
costs"). So the bars are one small `st.components.v2` component per card that asks the
dashboard's own server for its run's bars every `POLL_S` while the run is active: one GET
of `ROUTE` (`app.py` serves it through `st.App`), a few hundred bytes of JSON read from
the logs the server already follows (`dashboard/sharedlogs.py`), and two lines of text
and two widths set in place. No script runs and nothing goes over the websocket.

The words are made once, in `card_bars`, for the first draw and for every answer alike.
Where the route is not served (AppTest's bare mode, `navigation.py` run on its own), the
Train page redraws the same component from a ticking fragment instead (`dashboard/live.py`).
"""

from __future__ import annotations

from streamlit import config
from streamlit.components import v2 as components_v2

from dashboard import sharedlogs
from training import launch
from training.analysis.display import number
from training.launch import STOP_GRACE_S
from training.store import ACTIVE_STATES, QUEUED, STOPPING, Run, RunError, RunLog, RunStore, default_runs_dir

ROUTE = "/api/progress"  # ?run=<id>; under server.baseUrlPath when one is set
POLL_S = 2.0  # how often a card asks: live enough to read, and each ask costs about a millisecond

_served = False  # set by `routes()`: app.py serves ROUTE in this process


def card_bars(run: Run, log: RunLog, status: str) -> list[dict]:
    """The card's two bars, each {"value": 0–1, "text": ...}: epochs so far, then the epoch under way."""
    planned = run.meta.get("epochs") or 1
    done = log.epochs_done
    bars = [{"value": min(done / planned, 1.0), "text": f"Epochs: {done} of {planned}"}]
    progress = log.progress
    if status == STOPPING:
        batch = (0.0, "Stopping: the worker finishes its batch "
                      f"(killed after {STOP_GRACE_S:g} s if it does not)")
    elif status == QUEUED:
        batch = (0.0, f"Queued: {launch.queued_note(run)}")
    elif progress:
        batch = (min(progress["batch"] / progress["batches"], 1.0),
                 f"Epoch {progress['epoch']}: batch {progress['batch']} of {progress['batches']} · "
                 f"{number(progress.get('samples_per_s'), ',.0f')} samples/s so far")
    elif done:
        last = log.epochs[-1]
        batch = (0.0, f"Epoch {done + 1} starting · last epoch {number(last.get('samples_per_s'), ',.0f')} "
                      f"samples/s, val accuracy {number(last.get('val_accuracy'), '.4f')}")
    else:
        batch = (0.0, "Starting: loading TensorFlow, MNIST and the model")
    return [*bars, {"value": batch[0], "text": batch[1]}]


def route_path() -> str:
    """Where the route is, below the app's base path (the browser asks the same server)."""
    base = config.get_option("server.baseUrlPath").strip("/")
    return f"/{base}{ROUTE}" if base else ROUTE


def served() -> bool:
    """Whether this server answers `ROUTE`, so the cards can ask it themselves."""
    return _served


def routes() -> list:
    """The Starlette routes app.py adds to Streamlit's own: only `ROUTE`, read-only."""
    from starlette.routing import Route  # Streamlit's own server; imported only where it serves

    global _served
    _served = True
    return [Route(route_path(), _answer, methods=["GET"])]


def _answer(request):
    """GET ROUTE?run=<id>: that run's bars and whether to keep asking. Runs in Starlette's
    thread pool (a plain function), so reading the log never holds up the websocket."""
    from starlette.responses import JSONResponse

    headers = {"Cache-Control": "no-store"}
    try:
        run = RunStore(default_runs_dir()).open(request.query_params.get("run", ""))  # checks the id
        status = run.status()
        bars = sharedlogs.read(run.metrics_path, lambda log: card_bars(run, log, status))
    except RunError as missing:  # an invalid id or a run deleted meanwhile: the card stops asking
        return JSONResponse({"error": str(missing)}, status_code=404, headers=headers)
    except OSError as failed:  # a file that cannot be read just now: the card asks again
        return JSONResponse({"error": f"cannot read the run: {failed}"}, status_code=503, headers=headers)
    return JSONResponse({"bars": bars, "active": status in ACTIVE_STATES}, headers=headers)


# Runs whenever the card is drawn with new data: draws the bars, then (while the run is
# active and the route is served) asks for new ones every `poll_ms`, not while the tab is
# hidden. One timer per card.
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
      const percent = Math.round(100 * Math.max(0, Math.min(1, bar.value)));
      row.querySelector("p").textContent = bar.text;  // text, never markup: a run's words stay words
      row.querySelector(".track").setAttribute("aria-valuenow", percent);
      row.querySelector(".fill").style.width = percent + "%";
    });
  };
  clearInterval(box.timer);
  draw(data.bars);
  if (!data.url) return;
  const ask = () => document.hidden ? null : fetch(data.url, {cache: "no-store"}).then((answer) => {
    if (answer.status === 404) clearInterval(box.timer);  // the run is gone; the page reruns for that
    return answer.ok ? answer.json() : null;
  }).then((answer) => {
    if (!answer) return;
    draw(answer.bars);
    if (!answer.active) clearInterval(box.timer);
  }, () => {});  // the server restarting: ask again next time
  box.timer = setInterval(ask, data.poll_ms);
  return () => clearInterval(box.timer);
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
    """Draw the card's bars here; they ask for their own updates where the route is served."""
    live = _served and status in ACTIVE_STATES
    _BARS(key=f"progress_{run.id}", data={
        "bars": card_bars(run, log, status),
        "url": f"{route_path()}?run={run.id}" if live else None,  # ids are [A-Za-z0-9_-]: no escaping needed
        "poll_ms": int(POLL_S * 1000),
    })
