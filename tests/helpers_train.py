"""Shared by the training tests: a tiny colour-caption data set, a recipe config on the tiny towers, subprocess runs."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "align_english.py"

COLOURS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 40, 220)}


def make_colour_pairs(directory: Path, n: int = 32) -> Path:
    """``n`` solid-colour images and a JSONL manifest whose captions name the colour."""
    from PIL import Image

    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        name = list(COLOURS)[i % len(COLOURS)]
        r, g, b = COLOURS[name]
        shade = 2 * (i // len(COLOURS))  # distinct files, same colour name
        Image.new("RGB", (40, 40), (min(255, r + shade), g, b)).save(images / f"{i:03d}.png")
        lines.append(json.dumps({"image": f"images/{i:03d}.png", "caption": f"a photo of a {name} car"}))
    manifest = directory / "pairs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def colour_eval_manifest(manifest: Path) -> Path:
    """The pairs of ``make_colour_pairs`` as an English evaluation manifest (image, caption, lang)."""
    path = manifest.parent / "colours_val.jsonl"
    rows = [dict(json.loads(line), lang="en") for line in manifest.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_colour_shards(directory: Path, shards: int = 3, per_shard: int = 8) -> str:
    """Webdataset shards of solid-colour JPEGs (KEY.jpg + KEY.txt naming the colour); returns a brace pattern."""
    import io
    import tarfile

    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with tarfile.open(directory / f"shard-{s:03d}.tar", "w") as tar:
            for k in range(per_shard):
                i = s * per_shard + k
                name = list(COLOURS)[i % len(COLOURS)]
                image = io.BytesIO()
                Image.new("RGB", (40, 40), tuple(min(255, c + 2 * (i // 3)) for c in COLOURS[name])).save(
                    image, format="JPEG")
                for member, payload in ((f"{i:04d}.jpg", image.getvalue()),
                                        (f"{i:04d}.txt", f"a photo of a {name} car".encode())):
                    info = tarfile.TarInfo(member)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return str(directory / f"shard-{{000..{shards - 1:03d}}}.tar")


def recipe_config(model_config, manifest: Path, **fields) -> dict:
    """A recipe config (as a dict for YAML) on the tiny towers; ``fields`` override training fields."""
    values = {"model": dataclasses.asdict(model_config), "train_data": str(manifest), "train_format": "jsonl",
              "batch_size": 8, "epochs": 3, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 2, "warmup_lr": 1e-4,
              "num_workers": 0, "log_every": 1, "save_every": 4, "keep_checkpoints": 2, "seed": 0}
    values.update(fields)
    return values


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """Offline, one thread per process: two processes on two shared cores thrash otherwise."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def recipe_command(*args: str) -> list[str]:
    return [sys.executable, str(RECIPE), *args]


def run(cmd: list[str], timeout: float = 240, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True, timeout=timeout,
                          check=False)
