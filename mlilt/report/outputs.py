"""Writing a report's files: NAME.md, .csv, .tex and the charts."""

from __future__ import annotations

from pathlib import Path

from .charts import (can_summarise_strategies, plot_resource_scatter, plot_steps, plot_strategy_summary, plot_table,
                     untrained_probe_figure, write_gallery)
from .languages import log_resource
from .render import render_csv, render_latex, render_markdown
from .stats import compared_rows, untrained_probe_points
from .tables import Report, Table

OUTPUT_SUFFIXES = (".md", ".csv", ".tex", ".png")


def output_prefix(out: str | Path) -> Path:
    """``reports/NAME`` from ``reports/NAME`` or ``reports/NAME.md`` (any output suffix)."""
    out = Path(out)
    return out.with_suffix("") if out.suffix in OUTPUT_SUFFIXES else out


def write_report(report: Report, out: str | Path, *, decimals: int = 1, plot: bool = True) -> list[Path]:
    """Write NAME.md, NAME.csv, NAME.tex and NAME.png (plus NAME.text_probe.png, NAME.steps.png for runs scored
    at several steps, NAME.untrained_probe.png for many languages and an untrained row and, when the result files
    recorded one, NAME.gallery.png linked from NAME.md); return the paths. See :func:`plot_report_table` for which
    chart NAME.png is."""
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
            written += plot_report_table(report, t, path)
    return written + ([gallery] if gallery is not None else [])


def plot_report_table(report: Report, table: Table, path: Path) -> list[Path]:
    """The chart of one table: against the step for the steps table; for many languages, per-language Δ against
    the resource measure (the tier panels where no language has one); for mean recall, English vs the other
    languages per row (the per-language panels beside it, in NAME.languages.png); else a panel per language."""
    if table.name == "steps":
        plot_steps(report, table, path)
    elif table.many:
        if any(log_resource(lang, report.languages) is not None for lang in table.languages):
            plot_resource_scatter(report, table, path)
        else:
            plot_table(report, table, path, groups=list(table.mean_languages))
        if table.name == "retrieval" and any(len(untrained_probe_points(report, table, run)[0]) > 2
                                             for run in compared_rows(report, table)):
            against_probe = path.with_name(path.name.removesuffix(".png") + ".untrained_probe.png")
            plot_resource_scatter(report, table, against_probe, figure=untrained_probe_figure)
            return [path, against_probe]
    elif report.metric == "mean" and table.name == "retrieval" and can_summarise_strategies(table):
        title = f"{report.eval_set} ({report.protocol}): mean recall per row, English vs the other languages"
        plot_strategy_summary(table, path, title=title, report=report)
        panels = path.with_name(path.name.removesuffix(".png") + ".languages.png")
        plot_table(report, table, panels)
        return [path, panels]
    else:
        plot_table(report, table, path)
    return [path]
