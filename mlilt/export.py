"""Hub-ready export of a trained run: a folder to upload unchanged with ``huggingface-cli upload``.

    mlilt export runs/emoji-xtd/lilt_lwa-s0 out/mlilt-emoji-lilt_lwa --repo-id ORG/mlilt-emoji-lilt_lwa
    huggingface-cli upload ORG/mlilt-emoji-lilt_lwa out/mlilt-emoji-lilt_lwa
    python -c 'import mlilt; mlilt.load("ORG/mlilt-emoji-lilt_lwa")'

The folder holds what was trained (``trained.safetensors``: adapters, unlocked norms/biases,
projections, temperature), ``model_config.json`` naming the base models, the run's training config
(``config.yaml``) and ``README.md``: a model card with YAML front matter (library, base models,
languages evaluated, licence, tags) and a results table generated from the run's eval files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import yaml

from mlilt.model import CONFIG_NAME, WEIGHTS_NAME

CARD_NAME = "README.md"
DEFAULT_REPO_ID = "ORG/NAME"  # a placeholder in the card's usage lines until the user names the repo
RECALL_COLUMNS = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean")
TAGS = ["mlilt", "lilt", "clip", "multilingual", "image-text-retrieval", "zero-shot-image-classification",
        "parameter-efficient-fine-tuning", "adapters"]


def base_models(config: dict) -> list[str]:
    """Hub ids of the base towers (zoo models by the model they reproduce); local paths are not hub ids."""
    from mlilt.zoo import UPSTREAM

    out = []
    text, vision = config["text"]["name_or_path"], config["vision"]
    for name in (text, vision.get("weights")):
        if name and name.startswith("zoo:") and name[4:] in UPSTREAM:
            out.append(UPSTREAM[name[4:]])
    if not text.startswith("zoo:") and re.match(r"^[\w.-]+(/[\w.-]+)?$", text) and not Path(text).exists():
        out.append(text)
    if not vision.get("weights") and vision.get("pretrained", True):
        import timm

        cfg = timm.models.get_pretrained_cfg(vision["name"])
        if cfg is not None and cfg.hf_hub_id:
            out.append(cfg.hf_hub_id)
    return list(dict.fromkeys(out))


def retrieval_results(run_dir: Path) -> list[tuple[str, dict]]:
    """``(file name, result)`` of each retrieval result under RUN_DIR/eval, by name."""
    out = []
    for path in sorted((run_dir / "eval").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable result file ({err})") from err
        if data.get("task") == "retrieval" and data.get("results"):
            out.append((path.name, data))
    return out


def results_table(name: str, result: dict) -> list[str]:
    """A Markdown table of one result file: one row per language, Recall@K in %."""
    lines = [f"**{result['eval_set']}** ({result['protocol']}, {result.get('num_images')} images; `{name}`, "
             f"mlilt {result.get('mlilt_version')}, {result.get('created')}, "
             f"{(result.get('settings') or {}).get('precision', '?')}):", "",
             "| language | " + " | ".join(RECALL_COLUMNS) + " |", "|---|" + "---:|" * len(RECALL_COLUMNS)]
    for lang, scores in result["results"].items():
        lines.append(f"| {lang} | " + " | ".join(f"{scores[c]:.2f}" for c in RECALL_COLUMNS) + " |")
    return lines + [""]


def model_card(config: dict, results: list[tuple[str, dict]], *, repo_id: str, license: str,
               run_config: dict, run_name: str) -> str:
    """README.md of the exported folder: YAML front matter, what it is, results, how to load it."""
    languages = list(dict.fromkeys(lang.replace("_", "-").split("-")[0] for _, r in results for lang in r["results"]))
    front = {"library_name": "mlilt", "base_model": base_models(config), "language": languages,
             "license": license, "tags": TAGS}
    front = {k: v for k, v in front.items() if v}
    strategy = config.get("resolved_strategy") or {}
    text, vision = config["text"], config["vision"]
    trained = config.get("trainable")
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {run_name if repo_id == DEFAULT_REPO_ID else repo_id}", "",
             f"A CLIP-style dual encoder trained with **mlilt**'s `{config['strategy']}` strategy (LilT: Khan & Fu, "
             "ICLR 2023 — locked pretrained towers, unlocked norms/biases, small adapters, contrastive training). "
             f"This repository holds only what was trained ({trained:,} parameters: adapters, unlocked parameters, "
             "projections, temperature); loading rebuilds the base models named in `model_config.json`."
             if trained else "", "",
             f"- text tower: `{text['name_or_path']}` (pooling {text.get('pooling') or 'its default'}, "
             f"max length {text.get('max_length')})",
             f"- vision tower: `{vision['name']}`" + (f" with weights `{vision['weights']}`" if vision.get("weights")
                                                      else "") + f", {vision.get('img_size') or 'default'} px",
             f"- strategy: `{config['strategy']}` — text {strategy.get('text', {})}, "
             f"vision {strategy.get('vision', {})}",
             f"- embedding width: {config.get('embed_dim')}",
             f"- trained on: `{run_config.get('train_data', 'not recorded')}` (English), seed {run_config.get('seed')}",
             "", "## Results", "",
             "Image→text (TR) and text→image (IR) Recall@K in %, generated from the run's `mlilt eval` files.", ""]
    if results:
        for name, result in results:
            lines += results_table(name, result)
    else:
        lines += ["No evaluation files were found in the run (`mlilt eval RUN` writes them).", ""]
    local = [name for name in (text["name_or_path"], vision.get("weights"))
             if name and not name.startswith("zoo:") and Path(name).exists()]
    if local:
        lines += [f"Note: base model files given as local paths ({', '.join(f'`{n}`' for n in local)}); "
                  "whoever loads this model needs the same files at those paths.", ""]
    lines += ["## How to use", "", "With mlilt installed (`make install` in its repository):", "",
              "```python", "import mlilt", "",
              f'model = mlilt.load("{repo_id}")          # a DualEncoder; downloads into the HF cache',
              f'index = mlilt.search.Index(model)', 'index.add(["photo1.jpg", "photo2.jpg"])',
              'index.query(["ein rotes Auto", "kırmızı bir araba"], k=5)', "",
              f'# the open_clip interface (CLIP_benchmark and other open_clip tools)',
              f'model, _, preprocess = mlilt.create_model_and_transforms("{repo_id}")',
              f'tokenizer = mlilt.get_tokenizer("{repo_id}")', "```", "", "```bash",
              f'mlilt search {repo_id} --images photos/ "czerwony samochód" --html results.html',
              f"mlilt eval {repo_id} --langs ru,tr     # on the set it was trained on (config.yaml), or --eval-set",
              "```", "",
              f"Licence: `{license}`. The weights are derived from the base models above; their licences apply.",
              ""]
    return "\n".join(lines)


def export(run: str | os.PathLike, out: str | os.PathLike, *, repo_id: str = DEFAULT_REPO_ID,
           license: str = "other") -> Path:
    """Write the hub-ready folder ``out`` from a run (or model directory, or hub id)."""
    from mlilt.evaluation.leakage import RUN_CONFIG, read_run_config
    from mlilt.hub import is_hub_id, resolve_run
    from mlilt.model import atomic_write, check_trained_file, read_model_config, resolve_model_dir

    run_dir = resolve_run(run)
    model_dir = resolve_model_dir(run_dir)
    if model_dir == run_dir:  # a model directory: the run (with eval/ and config.yaml) is above it, if anywhere
        run_dir = next((p for p in (run_dir.parent, run_dir.parent.parent) if (p / RUN_CONFIG).is_file()), run_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / CONFIG_NAME).is_file():
            raise ValueError(f"{out}: exists and is not an earlier export; choose an empty or new folder")
    read_model_config(model_dir)  # a damaged config or weights file is said now, not copied along
    check_trained_file(model_dir / WEIGHTS_NAME)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((model_dir / CONFIG_NAME).read_text())
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        atomic_write(out / name, lambda tmp, src=model_dir / name: shutil.copyfile(src, tmp))
    run_config = read_run_config(run_dir)
    if run_config:
        atomic_write(out / RUN_CONFIG, lambda tmp: shutil.copyfile(run_dir / RUN_CONFIG, tmp))
    card = model_card(config, retrieval_results(run_dir), repo_id=repo_id, license=license, run_config=run_config,
                      run_name=str(run) if is_hub_id(run) else run_dir.resolve().name)
    if "whoever loads this model needs the same files" in card:
        print(f"mlilt export: warning: {run}: base models are local paths; see {out / CARD_NAME}", file=sys.stderr)
    atomic_write(out / CARD_NAME, lambda tmp: Path(tmp).write_text(card, encoding="utf-8"))
    return out


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``mlilt export``."""
    p = subparsers.add_parser(
        "export", help="Write a hub-ready folder (safetensors, config, model card) from a trained run.",
        description="Export a run for `huggingface-cli upload ORG/NAME OUT`: trained state (safetensors), "
                    "model config naming the base models, training config, and a model card with results.")
    p.add_argument("run", help="Run directory, model directory or hub id.")
    p.add_argument("out", help="Output folder (new or empty, or an earlier export to overwrite).")
    p.add_argument("--repo-id", default=DEFAULT_REPO_ID,
                   help="Hub id the card's title and usage lines name (default ORG/NAME: the run's name titles it).")
    p.add_argument("--license", default="other",
                   help="Licence id for the card (default 'other'); the base models' licences apply as well.")
    p.set_defaults(func=run_export)
    return p


def run_export(args) -> int:
    out = export(args.run, args.out, repo_id=args.repo_id, license=args.license)
    for path in sorted(out.iterdir()):
        print(path)
    return 0
