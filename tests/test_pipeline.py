"""The embedded pipeline (`make demo`) writes only where git ignores: a demo leaves the checkout clean."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pipeline_defaults():
    spec = importlib.util.spec_from_file_location("emoji_xtd_pipeline", REPO / "recipes" / "emoji_xtd_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_args([])


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_demo_outputs_are_git_ignored_and_committed_reports_are_not():
    args = pipeline_defaults()
    outputs = [f"{args.out}{suffix}" for suffix in (".md", ".csv", ".tex", ".png")]
    outputs += [f"{args.runs_dir}/lilt_lwa-s0/model/trained.safetensors"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *outputs], cwd=REPO,
                             capture_output=True, text=True).stdout.split()
    assert ignored == outputs
    committed = subprocess.run(["git", "check-ignore", "--no-index", "reports/emoji-xtd.md"], cwd=REPO,
                               capture_output=True, text=True)
    assert committed.returncode == 1  # not ignored: the committed report stays tracked
