"""The docs against the code: what they name exists, and the options list is complete.

- docs/guide.md's "All options of `run`" lists every option the `run` parser has, and
  only those (the parser is built from RunConfig, so a new setting needs a new row).
- Every repository path (`training/...`, `bench/...`, `tests/...`, `docs/...`, `pages/...`,
  `dashboard/...`) and every backticked module name (`training.x.y`, or a name defined in
  one) that README.md, docs/ or a Python file's docstrings and comments cite exists, and
  every relative Markdown link and its #anchor lead somewhere.
- The guide's contents list every `## ` section, since its parts are stitched in by hand.

Plain file reading and regular expressions: no import of what is checked, well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT

from training.cli.parser import build_parser

GUIDE = ROOT / "docs" / "guide.md"
OPTIONS_SECTION = "All options of `run`"
PREFIXES = ("training", "bench", "tests", "docs", "pages", "dashboard")
# A path: one of PREFIXES, then "/..."; not inside a longer path or a URL (no / . - or word before).
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(PREFIXES)})/[\w./-]*\w)(?![\w/]*[<*{{$])")
MODULE = re.compile(r"`(training(?:\.\w+)+)")  # a backticked dotted name, e.g. `training.store.layout`
LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target
FENCE = re.compile(r"^\s*```")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_files() -> list[Path]:
    folders = ("training", "pages", "dashboard", "bench", "tests")
    return [ROOT / "app.py", ROOT / "navigation.py",
            *(p for folder in folders for p in sorted((ROOT / folder).rglob("*.py")))]


def section(text: str, title: str) -> str:
    """The body of the `## title` section of a Markdown text ("" if there is none)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def run_options() -> dict[str, str]:
    """Every option string of `python -m training run`, with its help (-h/--help left out)."""
    run = build_parser().commands["run"]
    return {option: action.help or "" for action in run._actions  # argparse keeps no public list
            for option in action.option_strings if option not in ("-h", "--help")}


def test_every_option_of_run_is_in_the_guide_and_every_listed_one_exists():
    listed = section(GUIDE.read_text(), OPTIONS_SECTION)
    assert listed, f"docs/guide.md has no '## {OPTIONS_SECTION}' section"
    documented = set(re.findall(r"`(--?[a-z][\w-]*)", listed))
    options = run_options()
    missing = [f"| `{option}` | {options[option]} |" for option in options if option not in documented]
    unknown = sorted(documented - set(options))
    problems = []
    if missing:
        problems.append(f"docs/guide.md, '## {OPTIONS_SECTION}': add a row for each option of `python -m "
                        "training run` it does not list yet:\n" + "\n".join(missing))
    if unknown:
        problems.append(f"docs/guide.md, '## {OPTIONS_SECTION}' lists options `python -m training run` does "
                        f"not have: {', '.join(unknown)}; remove them or correct their spelling")
    assert not problems, "\n".join(problems)


def defines(module: Path, name: str) -> bool:
    """Whether a module's source defines `name` at its top level (a def, a class or an assignment)."""
    source = module.read_text()
    return bool(re.search(rf"^(?:async def|def|class) {name}\b|^{name}\s*[:=]|^from \S+ import .*\b{name}\b",
                          source, flags=re.MULTILINE))


def path_exists(path: str) -> bool:
    """A file or folder of the repository, or `folder/module.name`: a name defined in folder/module.py."""
    if (ROOT / path).exists():
        return True
    module, _, name = path.rpartition(".")
    return bool(module) and (ROOT / f"{module}.py").is_file() and defines(ROOT / f"{module}.py", name)


def string_names() -> set[str]:
    """Dotted strings the code itself defines, e.g. MLflow's tag "training.run_id": names, not modules."""
    return {name for path in (ROOT / "training").rglob("*.py")
            for name in re.findall(r"[\"'](training(?:\.\w+)+)[\"']", path.read_text())}


def module_exists(dotted: str) -> bool:
    """`training.a.b` is a module or package, `training.a` is one and defines `b`, or the code names it."""
    if dotted in STRING_NAMES:
        return True
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        found = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if found.is_file():
            rest = parts[cut:]
            return not rest or (len(rest) == 1 and defines(found, rest[0]))
    return False


def slug(heading: str) -> str:
    """The #anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of each Markdown heading; those inside ``` fences (shell comments) left out."""
    found, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.+)", line)):
            found.append((len(match.group(1)), match.group(2).strip()))
    return found


def anchors(path: Path) -> set[str]:
    return {slug(title) for _, title in headings(path.read_text())}


def broken_link(source: Path, target: str) -> str | None:
    """Why a relative Markdown link does not lead anywhere, or None when it does."""
    if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
        return None
    file_part, _, anchor = target.partition("#")
    path = (source.parent / file_part).resolve() if file_part else source
    if not path.exists():
        return f"links to {file_part}, which does not exist"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"links to #{anchor}, which is no heading of {path.relative_to(ROOT)}"
    return None


def stale_names(source: Path, text: str) -> list[str]:
    """What `text` (the contents of `source`) cites that does not exist, one sentence each."""
    problems, name, markdown = [], source.relative_to(ROOT), source.suffix == ".md"
    for number, line in enumerate(text.splitlines(), start=1):
        if "/" not in line and "`training." not in line and "](" not in line:
            continue  # nothing to check: most lines
        where = f"{name}:{number}"
        for path in PATH.findall(line):
            path = path.rstrip(".")
            if not path_exists(path):
                problems.append(f"{where} names {path}, which does not exist: correct the path or remove it")
        for dotted in MODULE.findall(line):
            if not module_exists(dotted):
                problems.append(f"{where} names `{dotted}`, which is no module and no name in one: correct "
                                "it or remove it")
        if markdown:
            for target in LINK.findall(line):
                if why := broken_link(source, target):
                    problems.append(f"{where} {why}")
    return problems


STRING_NAMES = string_names()


def comments_and_docstrings(source: str) -> str:
    """A Python file's text with its code lines blanked, so a path built in code is not read as cited.

    Kept: comments, and triple-quoted strings (the docstrings); line numbers stay as they were.
    """
    kept, in_string = [], False
    for line in source.splitlines():
        quotes = line.count('"""') + line.count("'''")
        if in_string or quotes:
            kept.append(line)
        elif "#" in line:
            kept.append(line[line.index("#"):])
        else:
            kept.append("")
        if quotes % 2:
            in_string = not in_string
    return "\n".join(kept)


def test_every_path_module_and_link_the_docs_cite_exists():
    problems = [p for path in markdown_files() for p in stale_names(path, path.read_text())]
    problems += [p for path in python_files() if path.name != "test_docs.py"
                 for p in stale_names(path, comments_and_docstrings(path.read_text()))]
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_made_up_path_module_and_anchor():
    """The scan above can fail: a path, a module, a name in a module and an anchor that do not exist."""
    text = ("Groups live in `training/stats.py`; see bench/no_such_bench.py and `training.analysis.nope`,\n"
            "`training.launch.cluster.revive_followers` and [Slurm](docs/guide.md#no-such-heading).\n"
            "Real: `training/config.py`, tests/conftest.py, `training.store.layout`,\n"
            "`training.config.RunConfig`, docs/parts/<name>.md, https://example.com/training/x.py\n"
            "and [the guide](docs/guide.md#tests-and-benchmarks).")
    problems = stale_names(ROOT / "README.md", text)
    named = ["training/stats.py", "bench/no_such_bench.py", "`training.analysis.nope`",
             "`training.launch.cluster.revive_followers`", "#no-such-heading"]
    assert [next(n for n in named if n in p) for p in problems] == named, problems
    assert all(p.startswith("README.md:") for p in problems)


def test_code_is_not_read_as_a_citation():
    source = 'path = "training/made_up.py"  # but this comment cites training/also_made_up.py\n'
    assert "made_up.py" not in comments_and_docstrings(source).split("#")[0]
    assert "also_made_up.py" in comments_and_docstrings(source)


def test_the_guide_lists_every_section_in_its_contents():
    text = GUIDE.read_text()
    contents = section(text, "Contents")
    listed = re.findall(r"^- \[(.+?)\]\(#([\w-]+)\)", contents, flags=re.MULTILINE)
    sections = [title for level, title in headings(text) if level == 2 and title != "Contents"]
    anchors_listed = {anchor for _, anchor in listed}
    missing = [f"- [{title}](#{slug(title)})" for title in sections if slug(title) not in anchors_listed]
    assert not missing, "docs/guide.md, '## Contents': add these lines:\n" + "\n".join(missing)
    stale = [f"[{title}](#{anchor})" for title, anchor in listed if anchor not in map(slug, sections)]
    assert not stale, f"docs/guide.md, '## Contents' lists sections that are not there: {', '.join(stale)}"


def test_the_readme_opens_on_what_it_is_the_screenshot_and_the_two_make_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    first_screen = "\n".join(lines[:30])
    for needed in ("docs/screenshot-compare.png", "make run", "make test"):
        assert needed in first_screen, f"README.md: put {needed} back in its first 30 lines"
    assert len(lines) < 150, f"README.md has {len(lines)} lines: move detail into docs/guide.md (under 150)"
    tour = section("\n".join(lines), "The four pages")
    for page in ("Train", "Compare", "Scaling", "Runs"):
        assert f"**{page}**" in tour, f"README.md, '## The four pages': the tour lacks {page}"
