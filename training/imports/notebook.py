"""Jupyter notebooks: the text a notebook's cells printed, as its console showed it.

A notebook (`.ipynb`, JSON) keeps what `fit` printed as stream outputs, `stdout` and
`stderr`, in the order they came; colour codes and carriage returns are kept too. This
reader joins each code cell's stream outputs and puts the Markdown cells' text between
them (so a heading names the log below it, as in a Markdown file). Cell sources are left
out: code is not a log. The result is read like any console text.
"""

from __future__ import annotations

import json

from training.imports.parsers import ImportFormatError


def looks_like_notebook(text: str) -> bool:
    head = text.lstrip()[:4096]
    return head.startswith("{") and '"cells"' in text[:1_000_000] and '"nbformat"' in text


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else value if isinstance(value, str) else ""


def stream_text(text: str, origin: str | None = None) -> str:
    """The Markdown text and stream outputs of every cell, in order."""
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFormatError(f"{origin or 'the file'} is not a readable notebook: its JSON breaks at "
                                f"line {error.lineno} ({error.msg}); nothing imported") from error
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):  # nbformat 3 kept cells under worksheets
        cells = [cell for sheet in (notebook.get("worksheets") or []) if isinstance(notebook, dict)
                 for cell in sheet.get("cells", [])]
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(_joined(cell.get("source")))
        elif cell.get("cell_type") == "code":
            streams = [_joined(output.get("text")) for output in cell.get("outputs") or []
                       if isinstance(output, dict) and output.get("output_type") == "stream"]
            parts.append("".join(streams))
    return "\n".join(part if part.endswith("\n") else part + "\n" for part in parts if part)
