"""Wall time of `mlilt eval` on XTD10 (1000 images x 8 languages) with base-size towers, offline.

    python benchmarks/eval_base.py                       # needs ../shared/xtd10 (or --xtd10 DIR)
    python benchmarks/eval_base.py --img-size 256 --batch-size 32 --workers 1

Builds everything it needs locally, with random weights (timing does not depend on them):
* a BERT-base-shaped text tower (``BertConfig()``: 12 layers, 768 wide) with a WordPiece tokenizer
  trained on the XTD10 captions themselves, saved with ``save_pretrained``;
* a DeiT-B vision tower (``deit_base_patch16_224``, random) saved to a local safetensors file;
* a ``lilt_lwa`` run directory (``model.save_trained``) on them;
* 1000 random small JPEGs under fake ``train2014/`` and ``val2014/`` folders, named as XTD10's images.

Then it runs the evaluation harness twice on an emptied embedding cache (first pass: the real cost;
second pass: what a rerun costs) and prints the image and text encoding times. Not a test.

The limit: a bare loop over the same model, the same preprocessed tensors (every image through the
harness's own eval transform, every caption through the tower's tokenizer, sorted and batched as the
harness batches them -- all done before the clock starts), ``torch.inference_mode``, the same batch
sizes and precision, no DataLoader, no cache. It prints the harness's image and text encoding as a
fraction of that loop (1.0: the harness costs nothing beyond the model). ``--repeats`` repeats the
harness's cold pass, each followed by the bare loops (same load), and keeps the fastest of each.

A smaller run (base size takes most of an hour on two CPU cores): ``--images 200 --langs en,ru``
evaluates the first 200 XTD10 images as a manifest set (same files, same captions; no text probe).

The many-language case (issue 19): ``--emoji-xtd DIR`` evaluates an emoji-XTD v2 build with captions
in every CLDR locale (protocol ``all``: three styles, each its own pool) in all its languages::

    python benchmarks/eval_base.py --emoji-xtd ~/.cache/mlilt/data/emoji-xtd-v2 --towers demo --concepts 60

``--concepts N`` keeps the first N test concepts of each style (a trimmed copy of the build, images
linked); ``--towers demo`` uses the embedded default's towers (multilingual-e5-small + EfficientNet-Lite0
at 64 px from ``$MLILT_HOME/zoo``, random adapters) instead of base size. The harness should encode each
style's images once and each language's captions once (the styles share them: the embedding cache
answers the second and third style). The bare loop replays what the harness's encoders were given in
its cold pass (recorded), so it encodes the same images and captions; the harness's text time counts all
three styles' passes, cache reads included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_XTD10 = REPO.parent / "shared" / "xtd10"


def build_text_tower(directory: Path, captions: list[str], vocab_size: int) -> Path:
    """BERT-base shape, WordPiece vocabulary learnt from the captions (no hub)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    if (directory / "config.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=False, strip_accents=False, handle_chinese_chars=True)
    wordpiece.train_from_iterator(captions, vocab_size=vocab_size, min_frequency=1)
    wordpiece.save_model(str(directory))                                     # vocab.txt
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=False,
                                  strip_accents=False)
    tokenizer.save_pretrained(directory)
    BertModel(BertConfig(vocab_size=len(tokenizer)), add_pooling_layer=False).save_pretrained(directory)
    return directory


def build_vision_weights(path: Path) -> Path:
    import timm
    from safetensors.torch import save_file

    if not path.is_file():
        model = timm.create_model("deit_base_patch16_224", pretrained=False, num_classes=0)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def build_images(root: Path, names: list[str], size: tuple[int, int] = (96, 72)) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in names:
        folder = root / ("train2014" if name.startswith("COCO_train2014_") else "val2014")
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / name).is_file():
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name, quality=85)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--xtd10", type=Path, default=DEFAULT_XTD10, help="Folder of the XTD10 caption files.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mlilt-eval-bench"))
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--text-batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--protocol", default="1k", help="1k (default) or lilt200.")
    parser.add_argument("--langs", default=None, help="Comma-separated subset (default: all eight).")
    parser.add_argument("--images", type=int, default=None,
                        help="Only the first N images of XTD10 (as a manifest set: no text probe); default all 1000.")
    parser.add_argument("--repeats", type=int, default=1, help="Cold passes and bare loops; the fastest counts.")
    parser.add_argument("--emoji-xtd", type=Path, default=None, metavar="DIR",
                        help="The many-language case: an emoji-XTD v2 build (every CLDR locale), protocol 'all', "
                             "every language unless --langs.")
    parser.add_argument("--concepts", type=int, default=None,
                        help="--emoji-xtd: only the first N test concepts of each style.")
    parser.add_argument("--towers", default="base", choices=("base", "demo"),
                        help="base: random BERT-base + DeiT-B; demo: the embedded default's zoo towers "
                             "(multilingual-e5-small + EfficientNet-Lite0, 64 px).")
    args = parser.parse_args(argv)
    if args.emoji_xtd is None and (args.concepts or args.towers != "base"):
        parser.error("--concepts and --towers demo go with --emoji-xtd")

    import torch
    import yaml

    from mlilt import ModelConfig, TextTowerConfig, VisionTowerConfig, build_model
    from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, format_table, load_for_eval
    from mlilt.evaluation.sets import load_eval_set, read_lines
    from mlilt.paths import mlilt_home

    zoo = mlilt_home() / "zoo"  # the user's zoo, before MLILT_HOME points at the benchmark's own home
    os.environ["MLILT_HOME"] = str(args.workdir / "home")  # its own cache: emptied below
    work = args.workdir
    start = time.perf_counter()
    if args.emoji_xtd is not None:
        source = load_eval_set("emoji-xtd", data_dir=first_concepts(args.emoji_xtd, args.concepts, work)
                               if args.concepts else args.emoji_xtd)
        captions = [c for lang in source.languages() for c in source.caption_lines(lang)]
    else:
        source = load_eval_set("xtd10", data_dir=args.xtd10, image_root=work / "coco")
        captions = [c for lang in source.languages() for c in source.caption_lines(lang)]
        build_images(work / "coco", read_lines(args.xtd10 / "test_image_names.txt"))
    if args.towers == "demo":
        (work / "home").mkdir(parents=True, exist_ok=True)
        if not (work / "home" / "zoo").exists():
            (work / "home" / "zoo").symlink_to(zoo)
        from mlilt.train.config import parse_args as parse_train_args

        config = parse_train_args(["--config", str(REPO / "recipes" / "configs" / "emoji_xtd.yaml")]).model
        run = work / "run_demo"
    else:
        text_dir = build_text_tower(work / f"bert-base-{source.name}", captions, args.vocab_size)
        weights = build_vision_weights(work / "deit_base_patch16_224.safetensors")
        config = ModelConfig(text=TextTowerConfig(str(text_dir)),
                             vision=VisionTowerConfig("deit_base_patch16_224", weights=str(weights),
                                                      img_size=args.img_size),
                             strategy="lilt_lwa")
        run = work / f"run_{source.name}_{args.img_size}"
    torch.manual_seed(0)
    build_model(config).save_trained(run / "model")
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "strategy": "lilt_lwa"}))
    setup_s = time.perf_counter() - start

    start = time.perf_counter()
    loaded = load_for_eval(run)
    load_s = time.perf_counter() - start
    print(f"setup {setup_s:.1f} s, model load {load_s:.1f} s; torch threads {torch.get_num_threads()}, "
          f"cpu count {os.cpu_count()}", flush=True)

    from mlilt.evaluation.harness import cache_dir

    langs = args.langs.split(",") if args.langs else None
    eval_set, protocol = source, args.protocol
    if args.emoji_xtd is not None:
        protocol, langs = "all", langs or source.languages()  # every language, not the eight defaults
    elif args.images is not None:
        eval_set = subset(source, args.protocol, args.images, langs, work / f"xtd10_first{args.images}.jsonl")
        protocol = eval_set.default_protocol  # a manifest set has one protocol, 'all'
    opts = EncodeOptions(device=args.device, precision=args.precision, batch_size=args.batch_size,
                         text_batch_size=args.text_batch_size, workers=args.workers, cache=True,
                         progress=sys.stderr.isatty())
    colds, bares = [], []
    for _ in range(args.repeats):
        shutil.rmtree(cache_dir(), ignore_errors=True)  # the first pass pays the full cost
        start = time.perf_counter()
        with Recorder() as recorded:
            result = evaluate_retrieval(loaded, eval_set, protocol, langs, opts=opts, quiet=True)
        colds.append((time.perf_counter() - start, result))
        # Right after it, under the same load: on a shared machine the load drifts between minutes.
        bares.append(bare_loops(loaded.model, recorded, result, opts))
    start = time.perf_counter()
    rerun = evaluate_retrieval(loaded, eval_set, protocol, langs, opts=opts, quiet=True)
    timings = {"cold": min(colds, key=lambda c: c[0]), "rerun": (time.perf_counter() - start, rerun)}
    print(format_table(timings["cold"][1]), flush=True)

    cold_wall, cold = timings["cold"]
    n_captions = sum(map(len, recorded.texts))  # encoded: a style's repeats come from the cache
    image_s, text_s = cold["timings"]["image_encoding_s"], cold["timings"]["text_encoding_s"]
    what = (f"emoji-XTD {protocol} ({'first %d concepts' % args.concepts if args.concepts else 'every concept'})"
            if args.emoji_xtd is not None else
            f"XTD10 {protocol if args.images is None else f'first {args.images} images'}")
    towers = ("multilingual-e5-small + EfficientNet-Lite0 (zoo, random adapters), 64 px" if args.towers == "demo"
              else f"BERT-base + DeiT-B (random weights), {args.img_size} px")
    print(f"\n=== mlilt eval, {what}, {towers}, "
          f"precision {cold['settings']['precision']}, device {cold['settings']['device']} ===")
    if cold.get("protocols"):
        print(f"cache:   images {cold['cache']['images']}; texts computed/read per style: " + ", ".join(
            f"{part} {sum(v == 'miss' for v in texts.values())}/{sum(v == 'hit' for v in texts.values())}"
            for part, texts in cold["cache"]["texts"].items()))
    print(f"images:  {cold['num_images']} in {image_s:.1f} s  ({1000 * image_s / cold['num_images']:.0f} ms/image, "
          f"batch {args.batch_size}, {args.workers} decode worker(s))")
    print(f"texts:   {n_captions} captions encoded ({len(cold['results'])} languages) in {text_s:.1f} s  "
          f"({1000 * text_s / n_captions:.1f} ms/caption, batch {args.text_batch_size})")
    print(f"total:   {cold_wall:.1f} s wall (scoring and probe: {cold_wall - image_s - text_s:.1f} s)")
    rerun_wall, rerun = timings["rerun"]
    print(f"rerun:   {rerun_wall:.1f} s wall with the embedding cache (images {rerun['cache']['images']})")

    bare_image_s, bare_text_s = min(b[0] for b in bares), min(b[1] for b in bares)
    image_s = min(c["timings"]["image_encoding_s"] for _, c in colds)
    text_s = min(c["timings"]["text_encoding_s"] for _, c in colds)
    print(f"limit (bare loop: same model, preprocessed tensors, inference_mode, same batches, no DataLoader), "
          f"fastest of {args.repeats}:")
    print(f"images:  bare {bare_image_s:.1f} s, mlilt eval {image_s:.1f} s -> {bare_image_s / image_s:.2f} of the limit")
    print(f"texts:   bare {bare_text_s:.1f} s, mlilt eval {text_s:.1f} s -> {bare_text_s / text_s:.2f} of the limit")
    return 0


def subset(xtd, protocol: str, n: int, langs: list[str] | None, path: Path):
    """The first ``n`` images of ``xtd``'s protocol with their captions, as a JSONL manifest set."""
    import json

    from mlilt.evaluation.sets import load_eval_set

    images = xtd.images(protocol)[:n]
    lines = []
    for lang in langs or xtd.languages():
        captions = xtd.captions(lang, protocol)
        lines += [json.dumps({"image": images[i].path, "caption": text, "lang": lang, "image_id": images[i].name})
                  for text, i in zip(captions.texts, captions.image_index) if i < n]
    path.write_text("\n".join(lines) + "\n")
    return load_eval_set(path)


def first_concepts(build: Path, n: int, work: Path) -> Path:
    """A copy of an emoji-XTD v2 build's test files with each style's first ``n`` concepts (images linked)."""
    lines = (build / "test_image_names.txt").read_text(encoding="utf-8").splitlines()
    concepts = list(dict.fromkeys(line.split("/", 1)[1] for line in lines))[:n]
    keep = [i for i, line in enumerate(lines) if line.split("/", 1)[1] in set(concepts)]
    out = work / f"emoji-xtd-first{n}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "images").symlink_to((build / "images").resolve())
    for path in [build / "test_image_names.txt", *sorted(build.glob("test_1kcaptions_*.txt"))]:
        rows = path.read_text(encoding="utf-8").splitlines()
        (out / path.name).write_text("".join(rows[i] + "\n" for i in keep), encoding="utf-8")
    return out


class Recorder:
    """Records what the harness encodes -- each ``encode_images`` and ``encode_texts`` call's inputs."""

    def __init__(self):
        self.images: list[list[str]] = []
        self.texts: list[list[str]] = []

    def __enter__(self):
        from mlilt.evaluation import harness

        self._real = harness.encode_images, harness.encode_texts

        def images(model, paths, *args, **kwargs):
            self.images.append(list(paths))
            return self._real[0](model, paths, *args, **kwargs)

        def texts(model, captions, *args, **kwargs):
            self.texts.append(list(captions))
            return self._real[1](model, captions, *args, **kwargs)

        harness.encode_images, harness.encode_texts = images, texts
        return self

    def __exit__(self, *exc):
        from mlilt.evaluation import harness

        harness.encode_images, harness.encode_texts = self._real


def bare_loops(model, recorded: Recorder, result: dict, opts) -> tuple[float, float]:
    """Seconds of the bare image and text loops over what the harness encoded (``recorded``).

    Replaying the harness's own calls keeps the bare loop honest whatever the harness selects (pools,
    missing captions, the text probe's English, the embedding cache answering a style's repeated captions).
    """
    import torch

    from mlilt.data.images import open_image
    from mlilt.evaluation.harness import autocast, image_transform

    device, precision = opts.torch_device(), result["settings"]["precision"]
    model = model.eval().to(device)
    transform = image_transform(model)
    pixels = [torch.stack([transform(open_image(path)) for path in paths]).to(device) for paths in recorded.images]
    # Each call's captions as the harness encodes them: sorted by length, cut into batches, tokenized.
    batches = []
    for caps in recorded.texts:
        order = sorted(range(len(caps)), key=lambda i: len(caps[i]))
        for start in range(0, len(order), opts.text_batch_size):
            batches.append(model.text.tokenize([caps[i] for i in order[start:start + opts.text_batch_size]],
                                               device=device))

    def timed(fn) -> float:
        start = time.perf_counter()
        with torch.inference_mode(), autocast(device, precision):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def images():
        for part in pixels:
            for start in range(0, len(part), opts.batch_size):
                model.encode_image(part[start:start + opts.batch_size])

    def captions():
        for batch in batches:
            model.encode_text(batch["input_ids"], batch["attention_mask"])

    return timed(images), timed(captions)


if __name__ == "__main__":
    sys.exit(main())
