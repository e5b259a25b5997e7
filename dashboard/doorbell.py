"""Rerun a browser's page from the server when what it drew changed: no polling from the browser.

A Streamlit fragment with `run_every` makes the browser and the server run a script, send
deltas and redraw every second, which a 2-core machine pays for out of the training it
watches (issue 23). Here the page instead hands the server a `look()` (a cheap read of the
disk: file listings and appended log bytes, no Streamlit call) and what it returned when
the page drew. One daemon thread per session and page calls `look()` every `every`
seconds; while it returns the same value, nothing at all goes to the browser. When it
changes, the thread asks that session for a rerun of the page it is on, the way
Streamlit's own run-on-save does (`AppSession.request_rerun` with the session's last
client state: its page and query string; widget values stay what they were).

Called from inside a fragment, `watch` rings that fragment alone for what only it drew:
`look()` returns two parts, what the whole page drew (run ids, statuses) and what the
fragment drew (epochs so far). A change in the first reruns the page; a change in the
second reruns only the fragment (`ClientState.fragment_id`, as a fragment's own
`run_every` does), so the browser redraws the charts and numbers that moved, not every
widget of the page.

The thread ends when its session ends or moves to another page; the page starts it again
when it is drawn again. Where the runtime offers no session to ring (AppTest, a future
Streamlit without these internals), `watch` returns False and the caller polls instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.runtime.scriptrunner import get_script_run_ctx

_LOCK = threading.Lock()
_FAILED = object()  # look() raised: differs from every drawn value, once
_WATCHES: dict[tuple[str, str], Watch] = {}  # (session id, page key) -> its watch


@dataclass
class Watch:
    """One session's page: what it drew, how to look again, and the page it is for."""

    session_id: str
    page_hash: str
    look: Callable[[], Hashable]
    drawn: Hashable
    every: float
    fragment_id: str | None = None  # the fragment that called `watch`, if one did
    thread: threading.Thread | None = field(default=None, repr=False)


def watch(key: str, look: Callable[[], tuple[Hashable, Hashable]], drawn: tuple[Hashable, Hashable],
          every: float) -> bool:
    """From a page's script: rerun this session's page (or only the calling fragment) once
    `look()` no longer returns `drawn`, a (page part, fragment part) pair.

    Call it on every rerun of the page or fragment (it replaces the last `look` and
    `drawn`); False where no session can be rung from here (bare mode, AppTest).
    """
    ctx = get_script_run_ctx()
    if ctx is None or _session(ctx.session_id) is None:
        return False
    with _LOCK:
        found = _WATCHES.get((ctx.session_id, key))
        if found is not None and found.thread is not None and found.thread.is_alive():
            found.look, found.drawn, found.every, found.page_hash = look, drawn, every, ctx.page_script_hash
            found.fragment_id = _fragment_id()
            return True
        found = _WATCHES[(ctx.session_id, key)] = Watch(ctx.session_id, ctx.page_script_hash, look, drawn,
                                                        every, _fragment_id())
        found.thread = threading.Thread(target=_keep_watching, args=(key, found), daemon=True,
                                        name=f"doorbell-{key}-{ctx.session_id[:8]}")
        found.thread.start()
    return True


def _keep_watching(key: str, w: Watch) -> None:
    while True:
        time.sleep(w.every)
        session = _session(w.session_id)
        if session is None or _page_of(session) != w.page_hash:
            break  # the tab closed or went to another page: that page draws its own watch
        try:
            now = w.look()
        except Exception:  # noqa: BLE001 - a run deleted mid-read, say: the page works it out again
            now = _FAILED
        with _LOCK:
            changed = now != w.drawn
            whole = now is _FAILED or w.drawn is _FAILED or now[0] != w.drawn[0] or not w.fragment_id
            fragment = None if whole else w.fragment_id
            if changed:
                w.drawn = now  # ring once per change, not every `every`
        if changed:
            _ring(session, fragment)
    with _LOCK:
        if _WATCHES.get((w.session_id, key)) is w:
            del _WATCHES[(w.session_id, key)]


def _session(session_id: str):
    """The live AppSession of this id, or None (no runtime here, or the session has ended)."""
    try:
        from streamlit import runtime

        if not runtime.exists():
            return None
        info = runtime.get_instance()._session_mgr.get_active_session_info(session_id)
    except (AttributeError, RuntimeError):  # internals this version does not have
        return None
    return None if info is None else info.session


def _page_of(session) -> str | None:
    state = getattr(session, "_client_state", None)
    return None if state is None else state.page_script_hash


def _fragment_id() -> str | None:
    """The fragment this script code runs in, or None (the page's own code, or no such internal)."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

        return ThreadState.get().fragment_id
    except (ImportError, AttributeError, RuntimeError):
        return None


def _ring(session, fragment_id: str | None) -> None:
    """Rerun `session`'s page as the browser last asked for it (page, query string, context),
    or only `fragment_id` in it while the session still holds that fragment."""
    again = ClientState()
    again.CopyFrom(session._client_state)
    again.is_auto_rerun = True
    again.fragment_id = fragment_id if fragment_id and session.has_fragment(fragment_id) else ""
    session.request_rerun(again)
