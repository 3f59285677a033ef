"""Smoke test of benchmarks/train_step.py on the tiny towers: one child per strategy, JSON with ratios to clip."""

import json
import sys

from conftest import TINY_VIT
from helpers_train import REPO, run


def test_train_step_benchmark_reports_each_strategy_against_clip(tiny_towers):
    text_dir, _ = tiny_towers
    proc = run([sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--text", str(text_dir),
                "--vision", TINY_VIT["name"], "--img-size", str(TINY_VIT["img_size"]),
                "--vision-kwargs", json.dumps(TINY_VIT["model_kwargs"]), "--no-pretrained", "--batch", "4",
                "--text-length", "8", "--steps", "1", "--warmup", "1", "--strategies", "clip,lilt_lwa",
                "--threads", "1", "--json"], timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert [r["strategy"] for r in rows] == ["clip", "lilt_lwa"]
    for r in rows:
        assert {"strategy", "step_s", "peak_mem_mb", "trainable", "time_vs_clip", "mem_vs_clip"} <= set(r)
        assert r["step_s"] > 0 and r["peak_mem_mb"] > 0
    clip, lilt = rows
    assert clip["time_vs_clip"] == clip["mem_vs_clip"] == 1.0
    assert lilt["trainable"] < clip["trainable"] and lilt["optimizer_state_bytes"] < clip["optimizer_state_bytes"]
    # AdamW: exp_avg and exp_avg_sq in fp32 per trained value, plus a step counter per tensor.
    assert 8 * lilt["trainable"] < lilt["optimizer_state_bytes"] < 8 * lilt["trainable"] + 4096
