"""The demo's report (recipes/emoji_xtd_pipeline.py): it leads with the numbers its headline line quotes, in a
first table and a chart of English vs the other languages per run."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from PIL import Image
from test_report import result, write

REPO = Path(__file__).resolve().parents[1]
EIGHT = ["en", "ru", "pl", "tr", "zh", "ko", "it", "es"]


def pipeline():
    spec = importlib.util.spec_from_file_location("emoji_xtd_pipeline", REPO / "recipes" / "emoji_xtd_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quoted(line: str) -> dict[tuple[str, str], float]:
    """(column, run) -> value from a headline line such as 'mean (non-en): lilt_lwa-s0 12.6, clip-s0 12.0; en: …'."""
    values = {}
    for part in line.split(" -- ", 1)[1].split("; "):
        column, cells = part.split(": ", 1)
        for cell in cells.split(", "):
            run, value = cell.rsplit(" ", 1)
            values[(column, run)] = float(value)
    return values


def test_demo_report_leads_with_the_headline_metric_in_its_first_table_and_chart(tmp_path):
    paths = [write(tmp_path, "lwa.json", result("lilt_lwa-s0", "lilt_lwa", protocol="all",
                                                tr1={x: 30.0 + i for i, x in enumerate(EIGHT)})),
             write(tmp_path, "clip.json", result("clip-s0", "clip", percent=100.0, protocol="all",
                                                 tr1={x: 40.0 - i for i, x in enumerate(EIGHT)})),
             write(tmp_path, "base.json", result("frozen-base", "frozen", seed=None, percent=0.0, protocol="all",
                                                 tr1={x: 10.5 for x in EIGHT}))]
    written, line = pipeline().write_demo_report(paths, str(tmp_path / "emoji-xtd"), "clip")
    headline = quoted(line)
    assert {column for column, _ in headline} == {"mean (non-en)", "en"}

    md = (tmp_path / "emoji-xtd.md").read_text()
    first = md.split("\n## ", 2)[1]  # the first section after the title
    assert first.startswith("Mean recall (TR/IR@1/5/10, %)")
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in first.splitlines() if row.startswith("| ")]
    header, body = rows[0], rows[2:]
    assert header[-2:] == ["mean (non-en) mean", "en mean"]
    table = {(column.removesuffix(" mean"), row[0]): float(row[i]) for row in body if not row[0].startswith("Δ")
             for i, column in enumerate(header) if column.endswith(" mean")}
    assert table == headline

    assert written[3] == tmp_path / "emoji-xtd.png"
    with Image.open(written[3]) as chart:
        plotted = [cells.split(" | ") for cells in chart.text["Plotted"].splitlines()[1:]]
        assert "lilt_lwa-s0" in chart.text["Source"] or "lwa.json" in chart.text["Source"]
    bars = {(column, run): round(float(mean), 1) for run, column, mean, _ in plotted}
    assert bars == pytest.approx(headline)
    assert (tmp_path / "emoji-xtd.languages.png").exists()  # the per-language panels stay, beside it
    assert re.search(r"metric: mean \(per language", md)
