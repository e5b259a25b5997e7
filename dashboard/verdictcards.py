"""The verdict's cards as one HTML element: each run's words, its speedup and its time to target.

Drawn as bordered containers of columns, markdown and two `st.metric`s, three runs were 22
Streamlit elements, and a live page redraws them at every epoch: 0.11 of the browser's
0.26 CPU-s per redraw here (bench/redraw_cost.py, issue 23). One `st.html` element with
the same content costs the browser one `innerHTML`. Every text from a run (its name, the
claim) is escaped: a run's name is whatever its owner typed.
"""

from __future__ import annotations

from html import escape

from training.analysis import verdict
from training.analysis.display import number

# The look of a bordered st.container holding st.metric: Streamlit's own sizes and greys.
CSS = """
<style>
.verdict-card { display: flex; align-items: center; gap: 1rem; border: 1px solid rgba(49, 51, 63, 0.2);
  border-radius: 0.5rem; padding: 1rem; margin-bottom: 1rem; }
.verdict-card .words { flex: 5; }
.verdict-card .figure { flex: 1.6; }
.verdict-card .figure .label { font-size: 0.875rem; color: rgba(49, 51, 63, 0.75); }
.verdict-card .figure .value { font-size: 2.25rem; line-height: 1.3; white-space: nowrap; }
</style>
"""


def card(item: dict, target: float) -> str:
    """One run (or cell): its label and claim, its speedup (the interval as the tooltip), time to target."""
    if item["baseline"]:
        speed_label, speed, tip = "Baseline", "1×", ""
    else:
        speed_label, speed = "Speedup", verdict.speedup_text(item["speedup"])
        tip = verdict.interval_text(item["interval"]) or (
            f"range {item['range'][0]:,.2f}–{item['range'][1]:,.2f}×" if item.get("range") else "")
    reached = ("not reached" if item["time_to_target_s"] is None
               else number(item["time_to_target_s"], ",.0f", " s"))
    return (f'<div class="verdict-card"><div class="words"><strong>{escape(item["label"])}</strong><br>'
            f'It {escape(item["claim"])}</div>'
            f'<div class="figure" title="{escape(tip)}"><div class="label">{speed_label}</div>'
            f'<div class="value">{escape(speed)}</div></div>'
            f'<div class="figure"><div class="label">Time to {target:.2%}</div>'
            f'<div class="value">{escape(reached)}</div></div></div>')


def cards(items: list[dict], target: float) -> str:
    """All the cards, baseline first, as one HTML string for `st.html`."""
    return CSS + "".join(card(item, target) for item in items)
