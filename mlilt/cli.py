"""The ``mlilt`` command line.

    mlilt eval runs/emoji-xtd/lilt_lwa-s0 --eval-set emoji-xtd        # cross-lingual retrieval
    mlilt eval RUN --eval-set xtd10 --protocol lilt200 --image-root ~/coco2014 --langs ru,tr
    mlilt report runs/emoji-xtd/*/eval/emoji-xtd_all.json --baseline clip --out reports/local/emoji-xtd
    mlilt search runs/emoji-xtd/lilt_lwa-s0 --images DIR "czerwony samochód" --html out.html
    mlilt export runs/emoji-xtd/lilt_lwa-s0 OUT --repo-id ORG/NAME                # hub-ready folder
    mlilt data check train.jsonl --image-root images/                   # missing images, empty captions
    mlilt data emoji-xtd [--version 1] | mlilt data xtd200 --download   # evaluation sets
    mlilt zoo convert all                                                # offline pretrained models
    mlilt params --text recipes/configs/architectures/bert-base-uncased.json \\
                 --vision deit_base_patch16_224 --img-size 256 --no-pretrained
    mlilt params ... --strategy lilt_lwa --json
    mlilt params ... --strategy lilt_lora --lora-rank 32
"""

from __future__ import annotations

import argparse
import copy
import json
import sys

from mlilt import strategies


def add_params_parser(subparsers) -> None:
    p = subparsers.add_parser("params", help="Total and trainable parameters per strategy (paper Table 1).",
                              description="Count total and trainable parameters for one or all strategies.")
    p.add_argument("--text", required=True, help="Text tower: hub id, model directory or config.json.")
    p.add_argument("--vision", required=True, help="Vision tower: timm model name.")
    p.add_argument("--img-size", type=int, default=None, help="Vision input size (ViT position embeddings resize).")
    p.add_argument("--embed-dim", type=int, default=256, help="Shared embedding width.")
    p.add_argument("--no-pretrained", action="store_true", help="Architecture only: build without weights.")
    p.add_argument("--strategy", action="append", default=None,
                   help="Strategy preset (repeatable; default: all). Presets: " + ", ".join(strategies.PRESETS))
    p.add_argument("--vision-adapter", default=None, help="Override the vision adapter (e.g. deep).")
    p.add_argument("--text-adapter", default=None, help="Override the text adapter.")
    p.add_argument("--lora-rank", type=int, default=strategies.LORA_RANK,
                   help=f"LoRA rank for adapter=lora (default {strategies.LORA_RANK}).")
    p.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    p.set_defaults(func=run_params)


def parameter_rows(text: str, vision: str, *, img_size: int | None = None, embed_dim: int = 256,
                   pretrained: bool = False, names: list[str] | None = None,
                   text_adapter: str | None = None, vision_adapter: str | None = None,
                   lora_rank: int = strategies.LORA_RANK) -> list[dict]:
    """One row per strategy: total, trainable, % trainable, per-tower breakdown."""
    import torch

    from mlilt.model import DualEncoder
    from mlilt.towers import TextTower, TextTowerConfig, VisionTower, VisionTowerConfig

    # Architecture only: build on the meta device, no memory and no init cost.
    device = torch.device("cpu") if pretrained else torch.device("meta")
    with device:
        base = DualEncoder(TextTower.from_config(TextTowerConfig(text, pretrained=pretrained)),
                           VisionTower.from_config(VisionTowerConfig(vision, pretrained=pretrained, img_size=img_size)),
                           embed_dim)
    rows = []
    for name in names or list(strategies.PRESETS):
        strategy = strategies.resolve(name, text_adapter=text_adapter, vision_adapter=vision_adapter)
        model = copy.deepcopy(base)
        with device:
            strategies.apply(model, strategy, lora_rank=lora_rank)
        c = strategies.count(model)
        rows.append({"strategy": name, "total": c["total"], "trainable": c["trainable"],
                     "percent_trainable": round(c["percent_trainable"], 4), "parts": c["parts"]})
    return rows


def run_params(args) -> int:
    from mlilt.towers import check_tower_names

    check_tower_names(args.text, args.vision, text_field="--text", vision_field="--vision")
    rows = parameter_rows(args.text, args.vision, img_size=args.img_size, embed_dim=args.embed_dim,
                          pretrained=not args.no_pretrained, names=args.strategy,
                          text_adapter=args.text_adapter, vision_adapter=args.vision_adapter,
                          lora_rank=args.lora_rank)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"text: {args.text}   vision: {args.vision} @ {args.img_size or 'default'} px   embed_dim: {args.embed_dim}")
    print(f"{'strategy':<16}{'total':>14}{'trainable':>14}{'% trained':>11}"
          f"{'text tr.':>14}{'vision tr.':>14}{'head tr.':>11}")
    for r in rows:
        p = r["parts"]
        print(f"{r['strategy']:<16}{r['total']:>14,}{r['trainable']:>14,}{r['percent_trainable']:>11.2f}"
              f"{p['text']['trainable']:>14,}{p['vision']['trainable']:>14,}{p['head']['trainable']:>11,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlilt", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_params_parser(subparsers)
    from mlilt.evaluation.cli import add_eval_parser

    add_eval_parser(subparsers)
    add_data_parser(subparsers)
    from mlilt.zoo.cli import add_subparser as add_zoo_parser

    add_zoo_parser(subparsers)
    from mlilt.report import add_report_parser

    add_report_parser(subparsers)
    from mlilt.export import add_export_parser
    from mlilt.search import add_search_parser

    add_search_parser(subparsers)
    add_export_parser(subparsers)
    return parser


def add_data_parser(subparsers) -> None:
    from mlilt.data import check, emoji_xtd
    from mlilt.evaluation.cli import add_install_parsers

    data = subparsers.add_parser("data", help="Check training data; build or install evaluation sets.")
    data_subparsers = data.add_subparsers(dest="data_command", required=True)
    check.add_subparser(data_subparsers)
    emoji_xtd.add_subparser(data_subparsers)
    add_install_parsers(data_subparsers)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Positionals after an option (`mlilt search RUN --images DIR "query"`): argparse leaves them over.
    if extra and getattr(args, "intermixed", None) and not any(a.startswith("-") for a in extra):
        setattr(args, args.intermixed, getattr(args, args.intermixed) + extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args) or 0
    except (ValueError, TypeError, OSError) as err:  # OSError: files, and hub ids transformers cannot reach
        print(f"mlilt {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
