"""Paper-style tables and charts (Table 2 of LilT) from ``mlilt eval`` result files.

A report reads result JSON files only: it never imports torch or model code.

    mlilt report results/*.json --baseline clip --out reports/xtd10
    # -> reports/xtd10.md, reports/xtd10.csv, reports/xtd10.tex, reports/xtd10.png

    >>> from mlilt.report import build_report, load_results, write_report
    >>> report = build_report(load_results(["a.json", "b.json"]), baseline="clip", metric="R@1")
    >>> report.table("retrieval").mean   # DataFrame: rows = runs, columns = (language, TR@1 | IR@1)
    >>> write_report(report, "reports/xtd10")

Rows are configurations (strategy, models, trainable %, training data, eval set, protocol); result
files of one configuration that differ only in seed are shown as mean ± sample standard deviation
with n. Columns are every language found in the results (in order of first appearance), then the
mean over all languages and over the languages not trained on (default: all but English), each
computed over the languages every file has. A Δ row per run gives its difference of means to the
baseline. The optional text-only probe (``text_probe``) is a second table in the same outputs.
A table compares runs on one test set: ``build_report`` refuses files of several eval sets or protocols.
``mlilt report`` given such files (``build_sets_report``) makes each set's report as above and leads with a
summary per set × resource tier and a per-language table with a column per set for each run, languages
aligned by their canonical tag:

    mlilt report eval/*_xtd200.json eval/*_xm3600.json --baseline clip --out reports/xtd200-xm3600

Modules: ``results`` (reading result files), ``tables`` (rows, mean columns, Δ), ``stats`` (paired
differences), ``render`` (Markdown, CSV, LaTeX), ``charts`` (PNG), ``outputs`` (writing the files), ``sets``
(several test sets side by side), ``cli``.
"""

from .build import build_report, headline
from .charts import plot_resource_scatter, plot_steps, plot_strategy_summary, plot_table, write_gallery
from .cli import add_report_parser, main, run_report
from .outputs import OUTPUT_SUFFIXES, output_prefix, write_report
from .render import render_csv, render_latex, render_markdown, render_paired_markdown, report_frame
from .results import (METRICS, PROBE_KEYS, RECALL_KEYS, REQUIRED_FIELDS, ResultFile, ResultFileError, load_result,
                      load_results, protocol_view)
from .sets import SetsReport, build_sets_report, render_sets_csv, render_sets_markdown, write_sets_report
from .stats import SlopeFit, fit_slope, paired_differences, resource_points
from .tables import Report, Table

add_subparser = add_report_parser

__all__ = ["METRICS", "OUTPUT_SUFFIXES", "PROBE_KEYS", "RECALL_KEYS", "REQUIRED_FIELDS", "Report", "ResultFile",
           "ResultFileError", "SetsReport", "SlopeFit", "Table", "add_report_parser", "add_subparser", "build_report",
           "build_sets_report", "fit_slope", "headline", "load_result", "load_results", "main", "output_prefix",
           "paired_differences", "plot_resource_scatter", "plot_steps", "plot_strategy_summary", "plot_table",
           "protocol_view", "render_csv", "render_latex", "render_markdown", "render_paired_markdown",
           "render_sets_csv", "render_sets_markdown", "report_frame", "resource_points", "run_report",
           "write_gallery", "write_report", "write_sets_report"]
