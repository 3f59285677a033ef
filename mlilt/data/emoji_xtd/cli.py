"""``mlilt data emoji-xtd``: the command line of the builder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .build import BUILDER_VERSIONS, DEFAULT_VERSION, STYLES, build_emoji_xtd
from .cldr import CLDR_PACKAGE
from .render import FONT_PACKAGE, OPENMOJI_PACKAGE, TWEMOJI_PACKAGE, TWEMOJI_VERSION


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register the ``emoji-xtd`` subcommand (``--out DIR``, ``--force``) on argparse subparsers."""
    p = subparsers.add_parser(
        "emoji-xtd", help="build the emoji-XTD retrieval set from emoji designs and CLDR names",
        description=f"Render emoji and write emoji-XTD (train.jsonl, XTD10-style test files). "
                    f"Needs the Debian packages {FONT_PACKAGE} and {CLDR_PACKAGE}; v2 also npm "
                    f"({TWEMOJI_PACKAGE}@{TWEMOJI_VERSION}) and the Python package {OPENMOJI_PACKAGE}.")
    p.add_argument("--version", type=int, choices=sorted(BUILDER_VERSIONS), default=DEFAULT_VERSION,
                   help="2 (default): three styles (Noto, Twemoji, OpenMoji), keyword captions, an "
                        "English val split; 1: Noto only, the set behind reports/emoji-xtd.md")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output directory (default: $MLILT_HOME/data/emoji-xtd for v1, "
                        "emoji-xtd-v2 for v2)")
    p.add_argument("--force", action="store_true", help="rebuild even if DIR already holds a build")
    p.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="side of the square images (default: v1 136, Noto without resampling; "
                        "v2 64, Twemoji without resampling)")
    p.add_argument("--keywords", action="store_true",
                   help="v1: add the English CLDR keywords as a second train caption per image")
    p.set_defaults(func=_run_cli)
    return p


def _run_cli(args: argparse.Namespace) -> int:
    out = build_emoji_xtd(args.out, version=args.version, image_size=args.image_size,
                          force=args.force, keywords=args.keywords)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    counts = meta["counts"]
    if args.version == 1:
        print(f"{out}: {counts['items']} emoji, {counts['train']} train, {counts['test']} test")
    else:
        print(f"{out}: {counts['concepts']} concepts x {len(STYLES)} styles, {counts['train']} train "
              f"({counts['train_rows']} captions), {counts['val']} val, {counts['test']} test; test captions "
              f"in {len(meta['languages'])} CLDR locales ({len(meta['cldr_locales']['left_out'])} left out, "
              "see meta.json)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mlilt.data.emoji_xtd [--out DIR] [--force]``."""
    parser = argparse.ArgumentParser(prog="mlilt data")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emoji-xtd", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)

