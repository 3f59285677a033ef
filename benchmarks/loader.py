"""Images per second of the training data pipeline, per DataLoader worker, as the recipe builds it. Not a test.

    python benchmarks/loader.py                                  # 256 COCO-shaped JPEGs, 1 and 2 workers
    python benchmarks/loader.py --workers 0,1,2 --gpu-step-ms 60 --gpu-batch 128

The pipeline is the recipe's own (``mlilt.train.loop``): the pairs table (``_load_pairs``), the
collator (``_collator``: open + decode, RandomResizedCrop(scale 0.2-1, bicubic), flip, ALBEF's
RandomAugment(2, 7), ToTensor, Normalize, tokenization, stacking) and the seeded, resumable batch
order (``_batches``: ``IndexedBatches`` over a ``DataLoader``). Nothing is re-implemented here.

Images: ``--images`` JPEGs of ``--image-size`` (default 640x480, COCO's typical shape; quality 90,
smooth colour fields plus noise so that they compress like photographs, ~100 kB), written once under
``--workdir``. The text tower is architecture-only (a tiny BERT config) with a WordPiece tokenizer
trained on the captions: tokenization is the real cost, the model is never run. The vision tower is
``deit_base_patch16_224`` at ``--img-size`` (its mean/std/resolution shape the transform).

Per worker count it times ``--batches`` batches after the first (worker start-up excluded) and prints
images/s, images/s per worker, and -- given a GPU step's measured length (``--gpu-step-ms`` for
``--gpu-batch`` pairs) -- how many workers that step would need not to wait for data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = ("a man woman dog cat red blue green car bus street table plate pizza sits stands next to on the "
         "of with in near two people riding bike horse beach tree building kitchen room white black").split()


def make_images(directory: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """``n`` photo-like JPEGs (smooth colour fields + noise) and their paths; kept if already there."""
    import numpy as np
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = directory / f"{i:06d}.jpg"
        if not path.is_file():
            coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            field = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
            noise = rng.normal(0, 12, field.shape).astype(np.int16)
            Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def make_manifest(directory: Path, images: list[Path], seed: int = 0) -> Path:
    import random

    rng = random.Random(seed)
    manifest = directory / "pairs.jsonl"
    manifest.write_text("".join(json.dumps({"image": str(p), "caption": " ".join(rng.choices(WORDS, k=rng.randint(8, 14)))})
                                + "\n" for p in images))
    return manifest


def make_text_tower(directory: Path, captions: list[str]) -> Path:
    """A tiny BERT config with a WordPiece tokenizer learnt from the captions (only the tokenizer is used)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertTokenizerFast

    if (directory / "config.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=False)
    wordpiece.train_from_iterator(captions, vocab_size=2000, min_frequency=1)
    wordpiece.save_model(str(directory))
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=False)
    tokenizer.save_pretrained(directory)
    BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64).save_pretrained(directory)
    return directory


def time_workers(pairs, collate, config, workers: int, batches: int) -> float:
    """Images per second over ``batches`` batches after the first, through the recipe's batch order."""
    from mlilt.train.loop import _batches

    data = _batches(pairs, collate, dataclasses.replace(config, num_workers=workers),
                    rank=0, world=1, per_process=config.batch_size, step=0, saved=None)
    data.next_step()  # the workers start and the first batch fills their queues: not timed
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        images += sum(len(b["pixels"]) for b in data.next_step() if b is not None)
    elapsed = time.perf_counter() - start
    del data
    return images / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/mlilt-loader-bench"))
    p.add_argument("--images", type=int, default=256, help="JPEGs to generate (the table the loader reads).")
    p.add_argument("--image-size", default="640x480", help="WIDTHxHEIGHT of the JPEGs (COCO: about 640x480).")
    p.add_argument("--vision", default="deit_base_patch16_224", help="timm model whose data config shapes the transform.")
    p.add_argument("--img-size", type=int, default=256, help="Training resolution (the paper: 256).")
    p.add_argument("--batch", type=int, default=32, help="Pairs per batch.")
    p.add_argument("--batches", type=int, default=6, help="Timed batches per worker count (after the first).")
    p.add_argument("--workers", default="1,2", help="Comma-separated DataLoader worker counts (0: main process).")
    p.add_argument("--repeats", type=int, default=1, help="Time each worker count this often; report the fastest.")
    p.add_argument("--gpu-step-ms", type=float, default=None, help="A measured GPU step (ms) to size the workers for.")
    p.add_argument("--gpu-batch", type=int, default=128, help="Pairs of that GPU step.")
    p.add_argument("--json", action="store_true", help="Print JSON instead of the table.")
    args = p.parse_args(argv)

    import torch

    import mlilt
    from mlilt.train.config import TrainConfig
    from mlilt.train.loop import _collator, _load_pairs

    torch.set_num_threads(1)  # the workers are the parallelism measured here
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    images = make_images(args.workdir / f"images_{width}x{height}", args.images, (width, height))
    manifest = make_manifest(args.workdir, images)
    captions = [json.loads(line)["caption"] for line in manifest.read_text().splitlines()]
    text_dir = make_text_tower(args.workdir / "text", captions)
    model_config = mlilt.ModelConfig(text=mlilt.TextTowerConfig(str(text_dir), pretrained=False),
                                     vision=mlilt.VisionTowerConfig(args.vision, pretrained=False, img_size=args.img_size),
                                     strategy="frozen")
    config = TrainConfig(model=model_config, train_data=str(manifest), train_format="jsonl", batch_size=args.batch,
                         max_steps=args.batches + 1, seed=0)
    model = mlilt.build_model(model_config)
    pairs, collate = _load_pairs(config), _collator(model, config)
    del model
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        rate = max(time_workers(pairs, collate, config, workers, args.batches) for _ in range(args.repeats))
        rows.append({"workers": workers, "images_per_s": rate, "images_per_s_per_worker": rate / max(workers, 1)})
        print(f"{workers} worker(s): {rate:.1f} images/s", file=sys.stderr, flush=True)
    per_worker = max(r["images_per_s_per_worker"] for r in rows)
    need = None
    if args.gpu_step_ms:
        need = args.gpu_batch / (args.gpu_step_ms / 1000)
    mean_kb = sum(p.stat().st_size for p in images) / len(images) / 1024
    if args.json:
        print(json.dumps({"rows": rows, "needed_images_per_s": need,
                          "workers_needed": math.ceil(need / per_worker) if need else None}, indent=2))
        return 0
    print(f"{len(images)} JPEGs {width}x{height} (mean {mean_kb:.0f} kB) -> {args.img_size} px, batch {args.batch}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, fastest of {args.repeats}")
    print(f"{'workers':>8}{'images/s':>11}{'per worker':>12}")
    for r in rows:
        print(f"{r['workers']:>8}{r['images_per_s']:>11.1f}{r['images_per_s_per_worker']:>12.1f}")
    if need:
        print(f"a GPU step of {args.gpu_step_ms:g} ms at batch {args.gpu_batch} consumes {need:.0f} images/s: "
              f"{math.ceil(need / per_worker)} workers at {per_worker:.1f} images/s each (one core per worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
