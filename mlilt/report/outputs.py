"""Writing a report's files: NAME.md, .csv, .tex and the charts."""

from __future__ import annotations

from pathlib import Path

from .charts import plot_table, write_gallery
from .render import render_csv, render_latex, render_markdown
from .tables import Report

OUTPUT_SUFFIXES = (".md", ".csv", ".tex", ".png")


def output_prefix(out: str | Path) -> Path:
    """``reports/NAME`` from ``reports/NAME`` or ``reports/NAME.md`` (any output suffix)."""
    out = Path(out)
    return out.with_suffix("") if out.suffix in OUTPUT_SUFFIXES else out


def write_report(report: Report, out: str | Path, *, decimals: int = 1, plot: bool = True) -> list[Path]:
    """Write NAME.md, NAME.csv, NAME.tex and NAME.png (plus NAME.text_probe.png and, when the result files
    recorded one, NAME.gallery.png linked from NAME.md); return the paths."""
    prefix = output_prefix(out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written = []
    gallery = write_gallery(report, prefix.with_name(prefix.name + ".gallery.png")) if plot else None
    markdown = render_markdown(report, decimals)
    if gallery is not None:
        markdown += (f"\n## Retrieval gallery\n\nWhat each run retrieves for a few test captions chosen by a fixed "
                     f"rule: [{gallery.name}]({gallery.name})\n\n![retrieval gallery]({gallery.name})\n")
    for suffix, text in ((".md", markdown), (".csv", render_csv(report)),
                         (".tex", render_latex(report, decimals))):
        path = prefix.with_name(prefix.name + suffix)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if plot:
        for t in report.tables:
            path = prefix.with_name(prefix.name + (".png" if t.name == "retrieval" else f".{t.name}.png"))
            plot_table(report, t, path)
            written.append(path)
    return written + ([gallery] if gallery is not None else [])
