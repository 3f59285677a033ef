"""``mlilt eval`` (retrieval, text probe, leakage; zero-shot) and ``mlilt data xtd10|xtd200|xm3600|...``.

    mlilt data xtd10 --download                       # caption files into $MLILT_HOME/data/xtd10
    mlilt data xtd10 --from ~/Downloads/XTD10         # or from a local copy
    mlilt data xtd200 --download                      # likewise xm3600, multi30k, flickr30k-200
    mlilt eval runs/lilt_lwa --image-root ~/coco2014                     # xtd10, protocol 1k, all languages
    mlilt eval runs/lilt_lwa --protocol lilt200 --langs ru,tr --exclude-overlap
    mlilt eval runs/lilt_lwa --captions sw=captions_sw.txt --langs sw
    mlilt eval runs/lilt_lwa --eval-set emoji-xtd                     # v2: every style and their mean
    mlilt eval runs/lilt_lwa --eval-set emoji-xtd-v1                  # the v1 set (Noto only)
    mlilt eval runs/lilt_lwa --eval-set my_pairs.jsonl
    mlilt eval runs/lilt_lwa --checkpoints all                        # every checkpoint: eval/<set>_<protocol>_step<N>.json
    mlilt eval --preset frozen --text bert-base-multilingual-cased --vision deit_base_patch16_224 ...
    mlilt eval runs/lilt_lwa --task zeroshot --dataset data/pets --template de="ein Foto von {}"

Mount with ``add_eval_parser(subparsers)`` and ``add_install_parsers(data_subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _key_values(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise ValueError(f"{flag} expects LANG=PATH, got {value!r}")
        out[key] = rest
    return out


def _langs(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``mlilt eval``."""
    from mlilt.evaluation.sets import POOLS
    from mlilt.strategies import PRESETS

    p = subparsers.add_parser(
        "eval", help="Cross-lingual retrieval (Recall@1/5/10, text probe, leakage) or zero-shot classification.",
        description="Evaluate a trained run (or an untrained preset on base models) on an evaluation set; "
                    "writes one JSON per run x set x protocol and prints a table.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    p.add_argument("run", nargs="?", help="Run directory (final model, else latest checkpoint), model directory or "
                                          "hub id; default: the most recent run under ./runs.")
    what = p.add_argument_group("untrained preset (instead of RUN)")
    what.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                      help="Evaluate this strategy untrained on --text/--vision: " + ", ".join(PRESETS))
    what.add_argument("--text", help="Text tower: hub id or local model directory.")
    what.add_argument("--vision", help="Vision tower: timm model name.")
    what.add_argument("--vision-weights", help="Local weights file for the vision tower.")
    what.add_argument("--img-size", type=int, help="Vision input size.")
    what.add_argument("--vision-kwargs", type=json.loads, default=None, metavar="JSON",
                      help='Extra timm.create_model arguments, e.g. \'{"drop_path_rate": 0.0}\'.')
    what.add_argument("--embed-dim", type=int, default=256, help="Projection width (default 256).")
    what.add_argument("--max-length", type=int, default=30, help="Text tokens (default 30, the paper's).")
    what.add_argument("--seed", type=int, default=0, help="Seed of the random projections (default 0).")

    p.add_argument("--task", choices=["retrieval", "zeroshot"], default="retrieval")
    ret = p.add_argument_group("retrieval")
    ret.add_argument("--eval-set", default=None,
                     help="Set name (xtd10, emoji-xtd), a set .yaml, or a JSONL manifest (image, caption, lang); "
                          "default: the set the run was trained on (its config.yaml train_data) if it is one, "
                          "else xtd10.")
    ret.add_argument("--protocol", help="Protocol of the set (xtd10: 1k | lilt200; emoji-xtd: all, the mean of "
                                        "noto | twemoji | openmoji, each also printed; default: the set's first).")
    ret.add_argument("--data-dir", help="Folder of the set's files (default: $MLILT_HOME/data/<set>).")
    ret.add_argument("--image-root", help="Image folder (xtd10: COCO 2014 with train2014/ and val2014/).")
    ret.add_argument("--langs", help="Comma-separated languages in any form (sw, swh_Latn, SW, zh-Hant), 'all' "
                                     "or a resource tier (tier0 ... tier5); default: the set's default_languages (emoji-XTD: "
                                     "its eight), else every language it has.")
    ret.add_argument("--pool", choices=POOLS, default=None,
                     help="When some languages lack captions for some images: score every language on the "
                          "images they all have (shared; the default unless the set says otherwise) or each "
                          "on all it has (own).")
    ret.add_argument("--captions", action="append", metavar="LANG=PATH",
                     help="A line-aligned caption file for a language (adds or replaces it); repeatable.")
    ret.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True,
                     help="Cross-lingual text-only probe with the text tower (default on).")
    ret.add_argument("--exclude-overlap", action="store_true",
                     help="Drop evaluation images that occur in the run's training data.")
    ret.add_argument("--train-data", help="Training source for the leakage check (default: RUN_DIR/config.yaml).")
    ret.add_argument("--train-format", default="auto", help="Format of --train-data (default auto).")
    ret.add_argument("--train-image-root", help="Image root of --train-data.")
    zs = p.add_argument_group("zero-shot")
    zs.add_argument("--dataset", help="Image folder with one sub-folder per class.")
    zs.add_argument("--classnames", action="append", metavar="LANG=PATH", help="Class-name file for a language.")
    zs.add_argument("--template", action="append", metavar="[LANG=]TEMPLATE",
                    help='Prompt template with {} (default en "a photo of {}."); repeatable.')
    zs.add_argument("--templates", metavar="FILE", help='JSON templates file {"lang": ["... {} ...", ...]}.')
    run = p.add_argument_group("running")
    run.add_argument("--out", help="Result JSON (default RUN_DIR/eval/<set>_<protocol>.json).")
    run.add_argument("--checkpoints", metavar="all|STEP,...",
                     help="Score the run's saved checkpoints (checkpoints/step_* and model/), all or these steps, "
                          "each into RUN_DIR/eval/<set>_<protocol>_step<N>.json (retrieval).")
    run.add_argument("--batch-size", type=int, default=64, help="Images per batch (default 64).")
    run.add_argument("--text-batch-size", type=int, default=256, help="Captions per batch (default 256).")
    run.add_argument("--workers", type=int, default=max(0, min(4, (os.cpu_count() or 1) - 1)),
                     help="Image-decoding processes (default: CPU cores - 1, at most 4).")
    run.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available).")
    run.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                     help="bf16 autocast or fp32; auto: bf16 where the hardware has native bf16 (default).")
    run.add_argument("--no-cache", action="store_true", help="Neither read nor write the embedding cache.")
    run.add_argument("--json", action="store_true", help="Print the result JSON instead of the table.")
    run.add_argument("--quiet", action="store_true", help="No progress bars or warnings on stderr.")
    p.set_defaults(func=run_eval)
    return p


#: the name the main CLI mounts
add_subparser = add_eval_parser


def _load(args):
    from mlilt.evaluation.harness import load_for_eval, load_preset
    from mlilt.towers import check_tower_names

    if args.run and args.preset:
        raise ValueError("give RUN or --preset, not both")
    if args.preset:
        if not args.text or not args.vision:
            raise ValueError("--preset needs --text and --vision (the base models)")
        check_tower_names(args.text, args.vision, text_field="--text", vision_field="--vision")
        return load_preset(args.preset, args.text, args.vision, img_size=args.img_size,
                           vision_weights=args.vision_weights, embed_dim=args.embed_dim, seed=args.seed,
                           max_length=args.max_length, vision_kwargs=args.vision_kwargs)
    return load_for_eval(args.run)


RUNS_DIR = "runs"


def latest_run(root: str | os.PathLike = RUNS_DIR) -> Path:
    """The run under ``root`` whose final model (else latest checkpoint) was written last."""
    from mlilt.model import CONFIG_NAME

    root = Path(root)
    written = {}
    for config in [*root.glob(f"**/model/{CONFIG_NAME}"), *root.glob(f"**/checkpoints/step_*/{CONFIG_NAME}")]:
        run = config.parent.parent if config.parent.name == "model" else config.parent.parent.parent
        written[run] = max(written.get(run, 0), config.stat().st_mtime_ns)
    if not written:
        raise ValueError(f"no RUN given and no trained run under ./{root}; train one with "
                         "`python recipes/align_english.py` (the emoji-XTD default, a few minutes on a CPU) "
                         "or `make demo`, or pass RUN (a run directory or hub id) or --preset NAME --text --vision")
    return max(written, key=written.get)


def trained_for(run: str | os.PathLike) -> str | None:
    """The evaluation set a run was trained on (config.yaml ``train_data`` naming a set, e.g. emoji-xtd)."""
    from mlilt.evaluation.leakage import training_source
    from mlilt.evaluation.sets import available_eval_sets
    from mlilt.hub import resolve_run

    source = training_source(resolve_run(run))
    name = source and source["train_data"]
    return name if name in available_eval_sets() else None


def run_eval(args) -> int:
    from mlilt.evaluation import harness, zeroshot
    from mlilt.evaluation.sets import load_eval_set

    opts = harness.EncodeOptions(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                 text_batch_size=args.text_batch_size, workers=args.workers,
                                 cache=not args.no_cache, progress=not args.quiet)
    opts.resolved_precision()
    if not args.run and not args.preset:
        args.run = str(latest_run())
        print(f"mlilt eval: no RUN given; evaluating the most recent run under ./{RUNS_DIR}: {args.run}",
              file=sys.stderr)
    if args.task == "zeroshot":
        if not args.dataset:
            raise ValueError("--task zeroshot needs --dataset DIR (one sub-folder per class)")
        templates = zeroshot.read_templates_file(args.templates) if args.templates else {}
        for lang, values in zeroshot.parse_templates(args.template).items():
            templates[lang] = values
        loaded = _load(args)
        result = zeroshot.evaluate_zeroshot(loaded, args.dataset, _langs(args.langs), templates=templates,
                                            classnames=_key_values(args.classnames, "--classnames"), opts=opts)
        name = f"zeroshot_{Path(args.dataset).expanduser().resolve().name}"
        table = zeroshot.format_table(result)
    else:
        if args.eval_set is None:
            args.eval_set = (trained_for(args.run) if args.run else None) or "xtd10"
            if not args.quiet:
                print(f"mlilt eval: eval set {args.eval_set}" + (" (the set the run was trained on)"
                      if args.eval_set != "xtd10" else " (the default; --eval-set chooses another)"), file=sys.stderr)
        eval_set = load_eval_set(args.eval_set, data_dir=args.data_dir, image_root=args.image_root,
                                 captions=_key_values(args.captions, "--captions"))
        protocol = eval_set.check_protocol(args.protocol)
        for part in eval_set.protocol_parts(protocol) or [protocol]:  # before the model takes seconds to load
            eval_set.select_languages(_langs(args.langs), part)
        source = None
        if args.train_data:
            source = {"train_data": args.train_data, "train_format": args.train_format,
                      "image_root": args.train_image_root, "split": "train"}
        if args.checkpoints:
            return _eval_checkpoints(args, eval_set, opts, source)
        loaded = _load(args)
        result = harness.evaluate_retrieval(loaded, eval_set, args.protocol, _langs(args.langs), opts=opts,
                                            probe=args.probe, exclude_overlap=args.exclude_overlap,
                                            train_source=source, quiet=args.quiet, pool=args.pool)
        name = f"{eval_set.name}_{result['protocol']}"
        table = harness.format_table(result)
    out = Path(args.out) if args.out else harness.default_result_path(loaded, name)
    result = harness.merge_previous(result, out)
    harness.write_result(result, out)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else table)
    if not args.json:
        print(f"wrote {out}")
    return 0


def installable_sets() -> dict[str, dict]:
    """Sets whose YAML lists published files to install (``source.files``), by name."""
    from mlilt.evaluation.sets import available_eval_sets, read_spec

    found = {}
    for name, path in available_eval_sets().items():
        try:
            spec = read_spec(path)
        except ValueError:
            continue  # a broken user YAML must not break `mlilt data`; `mlilt eval --eval-set` reports it
        if (spec.get("source") or {}).get("files"):
            found[name] = spec
    return found


def saved_models(run: str | os.PathLike, which: str) -> list[tuple[int, Path]]:
    """(step, model directory) of a run's checkpoints and final model: ``all`` or comma-separated steps."""
    from mlilt.evaluation.harness import trained_step
    from mlilt.model import CHECKPOINTS_DIR, CONFIG_NAME, FINAL_MODEL_DIR

    run = Path(run)
    found = {}
    for path in [*(run / CHECKPOINTS_DIR).glob("step_*"), run / FINAL_MODEL_DIR]:
        if (path / CONFIG_NAME).is_file():
            step = trained_step(path)
            if step is None and path.name[5:].isdigit():
                step = int(path.name[5:])
            if step is not None:
                found[step] = path
    if not found:
        raise ValueError(f"--checkpoints: {run} holds no saved checkpoint ({CHECKPOINTS_DIR}/step_*/ or "
                         f"{FINAL_MODEL_DIR}/ with their trainer_state.json)")
    if which.strip() == "all":
        return sorted(found.items())
    try:
        wanted = [int(x) for x in which.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--checkpoints: expected 'all' or comma-separated steps, got {which!r}") from None
    missing = [str(s) for s in wanted if s not in found]
    if missing or not wanted:
        raise ValueError(f"--checkpoints: no checkpoint of step {', '.join(missing) or repr(which)} in {run}; "
                         f"saved: {', '.join(map(str, sorted(found)))}")
    return [(s, found[s]) for s in sorted(set(wanted))]


def _eval_checkpoints(args, eval_set, opts, source) -> int:
    """``--checkpoints``: one retrieval result per saved model of the run, its step in the name and in run.step."""
    from mlilt.evaluation import harness

    if args.preset or args.out:
        raise ValueError("--checkpoints scores a run's own checkpoints: give RUN, without --preset or --out")
    chosen = saved_models(args.run, args.checkpoints)
    for i, (step, path) in enumerate(chosen, 1):
        print(f"mlilt eval: checkpoint {i}/{len(chosen)}: step {step} ({path})", file=sys.stderr)
        loaded = harness.load_for_eval(path)
        loaded.run["step"] = step
        result = harness.evaluate_retrieval(loaded, eval_set, args.protocol, _langs(args.langs), opts=opts,
                                            probe=args.probe, exclude_overlap=args.exclude_overlap,
                                            train_source=source, quiet=args.quiet, pool=args.pool)
        out = harness.default_result_path(loaded, f"{eval_set.name}_{result['protocol']}_step{step}")
        harness.write_result(harness.merge_previous(result, out), out)
        print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else harness.format_table(result))
        print(f"wrote {out}")
    return 0


def add_install_parsers(data_subparsers) -> None:
    """Register ``mlilt data NAME`` for every set with published files (xtd10, xtd200, xm3600 ...)."""
    for name, spec in installable_sets().items():
        licence = spec.get("licence") or {}
        p = data_subparsers.add_parser(
            name, help=f"Install the {name} caption files (download, or from a local copy).",
            description=f"Install the {name} files into the data directory ({licence.get('name')}: "
                        f"{licence.get('terms')}). The images are not included: pass your own folder to "
                        "mlilt eval --image-root.")
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--download", action="store_true", help="Fetch the files from the published source.")
        src.add_argument("--from", dest="from_dir", metavar="DIR", help="Copy them from a local copy.")
        p.add_argument("--data-dir", help=f"Destination (default: $MLILT_HOME/data/{name}).")
        p.add_argument("--force", action="store_true", help="Overwrite files already there.")
        p.set_defaults(func=run_install, eval_set=name)


def run_install(args) -> int:
    from mlilt.evaluation.sets import (default_data_dir, find_spec_file, install_set, load_eval_set, read_spec,
                                       unverified)

    spec = read_spec(find_spec_file(args.eval_set))
    dest = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir(spec)
    licence, source = spec.get("licence") or {}, spec.get("source") or {}
    print(f"{spec['name']} -- {licence.get('name')}: {licence.get('terms')}\n"
          f"  licence: {licence.get('url')}\n"
          f"  source:  {source.get('homepage')} (commit {str(source.get('commit', ''))[:7]})")
    unchecked = unverified(spec)
    if args.download and unchecked:
        print(f"  not verified: no published sha256 is recorded for {', '.join(unchecked)}")
    try:
        written = install_set(spec, dest, from_dir=args.from_dir, download=args.download, force=args.force)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        print(f"mlilt data {spec['name']}: error: {err}", file=sys.stderr)
        return 1
    installed = load_eval_set(spec["name"], data_dir=dest)
    codes = installed.languages()
    shown = ", ".join(codes) if len(codes) <= 12 else f"{len(codes)}: {', '.join(codes[:8])} ..."
    print(f"installed {len(written)} files in {dest} (languages: {shown}); by using them you accept "
          f"the terms above")
    return 0
