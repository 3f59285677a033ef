"""Test helper: `mlilt eval` and `mlilt data NAME` as the CLI parses them, but raising errors instead of exiting 2."""

from __future__ import annotations

import argparse

from mlilt.evaluation.cli import add_eval_parser, add_install_parsers


def mlilt_cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="mlilt")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_install_parsers(sub.add_parser("data").add_subparsers(dest="data_command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)
