"""Align a vision tower to a multilingual text tower on English image-caption pairs (LilT recipe).

With no ``--config`` (and no ``--resume``) it runs the embedded default, ``configs/emoji_xtd.yaml``:
multilingual-e5-small + EfficientNet-Lite0 from mlilt's offline zoo, ``lilt_lwa``, on emoji-XTD v2's
English captions -- the paper's pipeline on what exists offline on a CPU.

A thin script: parse the configuration, call ``mlilt.train.loop.train``. The configuration is the
dataclass ``mlilt.train.config.TrainConfig``; a YAML file (``--config``) sets any of its fields and
every field is also a flag, by its dotted name, that overrides the file::

    accelerate launch recipes/align_english.py --config recipes/configs/paper_mbert_deit.yaml
    accelerate launch recipes/align_english.py --config recipes/configs/paper_mbert_deit_clip.yaml \\
        --run_dir runs/clip --lr 3e-4 --model.strategy clip
    python recipes/align_english.py --config my.yaml --max_steps 100     # one process, no launcher
    python recipes/align_english.py --run_dir runs/clip --resume         # continue the latest checkpoint
    python recipes/align_english.py --help                                # every field, its default and meaning

The run directory gets config.yaml, metrics.jsonl, checkpoints/step_XXXXXXXX/ and model/ (and best/ with
``--keep_best en/mean``: the best of the evaluations made every ``--eval_every`` steps on the training data's
validation split or ``--eval_set``); ``mlilt.load(RUN_DIR)`` loads the result.
"""

import sys
from pathlib import Path

from mlilt.train.config import parse_args
from mlilt.train.loop import train

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "emoji_xtd.yaml"


def parse_recipe_args(argv: list[str]):
    """The TrainConfig of these flags, on top of the embedded default unless a config (or resume) is named."""
    if not any(a.split("=")[0] in ("--config", "--resume", "-h", "--help") for a in argv):
        argv = ["--config", str(DEFAULT_CONFIG), *argv]
    return parse_args(argv, prog="align_english.py", description=__doc__.split("\n")[0])


def main(argv: list[str] | None = None) -> int:
    try:
        train(parse_recipe_args(sys.argv[1:] if argv is None else argv))
    except (ValueError, OSError) as err:  # OSError: files, and hub ids transformers cannot reach
        print(f"align_english.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
