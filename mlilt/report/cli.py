"""``mlilt report``: its argument parser and command."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from .build import build_report
from .outputs import write_report
from .render import render_markdown
from .results import METRICS, load_results, protocol_view
from .sets import build_sets_report, render_sets_markdown, test_sets, write_sets_report


def add_report_parser(subparsers) -> None:
    """Register ``mlilt report``."""
    p = subparsers.add_parser(
        "report", help="Paper-style tables (Markdown, CSV, LaTeX) and charts (PNG) from eval result files.",
        description="Tabulate `mlilt eval` result files like the paper's Table 2: rows = runs (seeds of one "
                    "configuration as mean ± std), columns = language x TR/IR, mean over all and over untrained "
                    "languages, Δ rows to a baseline; plus the text-only probe when present.")
    p.add_argument("results", nargs="+", metavar="RESULT_JSON",
                   help="Result files of `mlilt eval`; of several eval sets or protocols: a report per set, led by "
                        "a summary per set x resource tier and the languages side by side.")
    p.add_argument("--out", default=None, metavar="reports/NAME",
                   help="Write NAME.md, NAME.csv, NAME.tex, NAME.png; without it, print the Markdown only.")
    p.add_argument("--baseline", default=None, metavar="RUN",
                   help="Row for the Δ rows: a run name or a strategy (e.g. clip).")
    p.add_argument("--metric", choices=METRICS, default="R@1",
                   help="Recall level shown as TR/IR per language, or 'mean' (of all six recalls). Default R@1.")
    p.add_argument("--group-by", choices=("config", "run"), default="config",
                   help="config: files of one configuration that differ in seed become one row (default); "
                        "run: one row per run name.")
    p.add_argument("--train-language", action="append", default=None, metavar="LANG",
                   help="Language trained on, left out of the untrained-languages mean (repeatable; default en).")
    p.add_argument("--langs", default=None, metavar="LANGS",
                   help="Comma-separated languages to show (tags, codes or English names, any case) or resource "
                        "tiers (tier0 … tier5, where the results record tiers); kept in the files' order.")
    p.add_argument("--protocol", default=None, metavar="PART",
                   help="Tabulate one part of an averaged protocol (emoji-xtd: noto, twemoji or openmoji) "
                        "instead of the files' mean.")
    p.add_argument("--decimals", type=int, default=1, help="Decimals shown in Markdown/LaTeX (default 1).")
    p.add_argument("--no-plot", action="store_true", help="Skip the PNG chart (no matplotlib needed).")
    p.set_defaults(func=run_report)


add_subparser = add_report_parser


def run_report(args) -> int:
    """``mlilt report``: build the report, write it, print the Markdown or the written paths."""
    results = load_results(args.results)
    if args.protocol:
        results = protocol_view(results, args.protocol)
    options = dict(baseline=args.baseline, metric=args.metric, group_by=args.group_by,
                   train_languages=args.train_language or ["en"],
                   languages=[x for x in args.langs.split(",") if x.strip()] if args.langs else None)
    several = len(test_sets(results)) > 1
    report = build_sets_report(results, **options) if several else build_report(results, **options)
    if args.out is not None and not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        print("mlilt report: error: the PNG chart needs matplotlib: pip install matplotlib (or pass --no-plot)",
              file=sys.stderr)
        return 2
    if args.out is None:
        print((render_sets_markdown if several else render_markdown)(report, args.decimals))
        return 0
    write = write_sets_report if several else write_report
    for path in write(report, args.out, decimals=args.decimals, plot=not args.no_plot):
        print(path)
    notes = report.notes + [n for rep in report.reports.values() for n in rep.notes] if several else report.notes
    for note in notes:
        print(note, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``mlilt report`` alone: ``python -m mlilt.report RESULT_JSON... --out reports/NAME``."""
    parser = argparse.ArgumentParser(prog="mlilt")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as err:
        print(f"mlilt report: error: {err}", file=sys.stderr)
        return 2
