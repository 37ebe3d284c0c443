"""Committed Markdown reports must show the numbers of the JSON files committed beside them.

Every table under results/ and benchmarks/ is written by a command from a JSON file that the same
command saved (``nuat eval``: eval.json, ``nuat sanity``: sanity.json, ``nuat bench``: <out>.json).
A number edited by hand in the Markdown, or a JSON file replaced without re-rendering its report,
makes the two disagree; these tests render each JSON file with the current report code and compare.
Bench reports are compared on their table rows that hold numbers only: their titles and notes are
given on the command line (and older JSON files do not store them), and header wording may change
with the report code without changing a number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nuat.bench.report import markdown as bench_markdown
from nuat.eval.report import render_markdown
from nuat.eval.sanity import render_sanity

REPO_ROOT = Path(__file__).resolve().parents[1]


def _eval_reports() -> list[tuple[Path, list[Path]]]:
    """Each committed eval.md with the eval.json files it is rendered from: its own folder's, or
    (``nuat eval RUN_DIR``: one table per checkpoint) those of its sub-folders, in name order."""
    pairs = []
    for md in sorted(REPO_ROOT.glob("results/**/eval.md")) + sorted(REPO_ROOT.glob("benchmarks/**/eval.md")):
        own = md.with_name("eval.json")
        sources = [own] if own.exists() else sorted(md.parent.glob("*/eval.json"))
        pairs.append((md, sources))
    return pairs


def _numeric_rows(text: str) -> list[str]:
    """The table rows of a Markdown text that hold a digit (header rows hold none)."""
    return [line.rstrip() for line in text.splitlines()
            if line.startswith("|") and any(ch.isdigit() for ch in line)]


def _bench_reports() -> list[Path]:
    """Committed ``nuat bench`` JSON files that have their Markdown report beside them."""
    found = []
    for path in sorted(REPO_ROOT.glob("benchmarks/**/*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and {"schema", "config", "environment", "methods"} <= data.keys() \
                and path.with_suffix(".md").exists():
            found.append(path)
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def test_the_reports_are_found() -> None:
    # the globs must keep finding the committed reports, or the comparisons below test nothing
    assert len(_eval_reports()) >= 5 and all(sources for _, sources in _eval_reports())
    assert len(list(REPO_ROOT.glob("results/**/sanity.md"))) >= 2
    assert len(_bench_reports()) >= 5


@pytest.mark.parametrize(("md", "sources"), [pytest.param(md, sources, id=_rel(md)) for md, sources in _eval_reports()])
def test_eval_report_equals_its_json(md: Path, sources: list[Path]) -> None:
    expected = "\n".join(render_markdown(json.loads(path.read_text())) for path in sources)
    assert md.read_text().rstrip("\n") == expected.rstrip("\n"), (
        f"{_rel(md)} differs from the rendering of {', '.join(map(_rel, sources))}")


@pytest.mark.parametrize("md", sorted(REPO_ROOT.glob("results/**/sanity.md")), ids=_rel)
def test_sanity_report_equals_its_json(md: Path) -> None:
    expected = render_sanity(json.loads(md.with_name("sanity.json").read_text()))
    assert md.read_text().rstrip("\n") == expected.rstrip("\n")


@pytest.mark.parametrize("path", _bench_reports(), ids=_rel)
def test_bench_report_numbers_equal_its_json(path: Path) -> None:
    committed = _numeric_rows(path.with_suffix(".md").read_text())
    rendered = _numeric_rows(bench_markdown(json.loads(path.read_text())))
    assert committed, f"{_rel(path.with_suffix('.md'))} has no table rows with numbers"
    assert committed == rendered, (
        f"{_rel(path.with_suffix('.md'))}: rows not as rendered from {path.name} "
        f"(regenerate with `nuat bench --render {_rel(path)} --title ...`): "
        f"{sorted(set(committed) ^ set(rendered))[:4]}")
