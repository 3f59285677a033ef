"""Smoke tests of the benchmark scripts on tiny towers: they run and report what they promise (no timings asserted)."""

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
    # FLOPs: the backward of a fully trained model costs about twice its forward; only lilt_lwa has adapters,
    # and it skips the frozen weights' gradients, so it needs fewer FLOPs than clip.
    assert 1.5 < clip["backward_flops"] / clip["forward_flops"] < 2.5 and clip["adapter_flops"] == 0
    assert 0 < lilt["forward_adapter_flops"] < lilt["forward_flops"] and lilt["flops_vs_clip"] < 1
    assert lilt["flops"] == lilt["forward_flops"] + lilt["backward_flops"] and lilt["flop_per_s"] > 0


def test_memory_budget_fits_a_line_and_checks_it_on_a_held_out_batch(tiny_towers):
    text_dir, _ = tiny_towers
    proc = run([sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--text", str(text_dir),
                "--vision", TINY_VIT["name"], "--img-size", str(TINY_VIT["img_size"]),
                "--vision-kwargs", json.dumps(TINY_VIT["model_kwargs"]), "--no-pretrained", "--text-length", "8",
                "--strategies", "lilt_lwa", "--threads", "1", "--memory-budget", "1", "--fit-batches", "1,4",
                "--check-batch", "2", "--json"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert [(r["strategy"], r["gradient_checkpointing"]) for r in rows] == [("lilt_lwa", False), ("lilt_lwa", True)]
    for r in rows:
        assert r["peak_kind"] == "cpu_max_allocated"  # live tensor bytes replayed, not RSS
        assert set(r["measured_mb"]) == {"1", "4", "2"} and r["fixed_mb"] > 0 and r["per_sample_mb"] > 0
        assert r["check_measured_mb"] == r["measured_mb"]["2"]
        assert r["check_predicted_mb"] == r["fixed_mb"] + 2 * r["per_sample_mb"]
        assert r["fixed_mb"] + r["largest_batch"] * r["per_sample_mb"] <= 1024 < \
            r["fixed_mb"] + (r["largest_batch"] + 1) * r["per_sample_mb"]
    plain, recomputed = rows
    assert recomputed["per_sample_mb"] < plain["per_sample_mb"]  # checkpointing keeps fewer activations per pair


def test_loader_benchmark_times_the_recipes_pipeline(tmp_path):
    proc = run([sys.executable, str(REPO / "benchmarks" / "loader.py"), "--workdir", str(tmp_path), "--images", "12",
                "--image-size", "64x48", "--vision", TINY_VIT["name"], "--img-size", "32", "--batch", "4",
                "--batches", "2", "--workers", "0,1", "--gpu-step-ms", "100", "--gpu-batch", "64", "--json"],
               timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [r["workers"] for r in out["rows"]] == [0, 1] and all(r["images_per_s"] > 0 for r in out["rows"])
    assert out["needed_images_per_s"] == 640 and out["workers_needed"] >= 1


def test_interleaved_rounds_keep_each_strategys_fastest_step():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_step", REPO / "benchmarks" / "train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def row(strategy, times, mem):
        return {"strategy": strategy, "mode": "eager", "step_s_all": times, "step_cpu_s_all": [2 * t for t in times],
                "peak_mem_mb": mem, "flops": 100.0}

    # Round 2 is slow for clip and fast for ln_only: each keeps its own best step, whichever round it came from.
    rounds = [[row("clip", [3.0, 2.5], 10), row("ln_only", [2.0, 2.2], 5)],
              [row("clip", [4.0, 3.5], 11), row("ln_only", [1.5, 1.8], 6)]]
    clip, ln_only = bench.add_ratios(bench.merge_rounds(rounds))
    assert (clip["step_s"], ln_only["step_s"]) == (2.5, 1.5)
    assert ln_only["step_s_rounds"] == [[2.0, 2.2], [1.5, 1.8]] and ln_only["step_cpu_s"] == 3.0
    assert ln_only["time_vs_clip"] == 1.5 / 2.5 and ln_only["flop_per_s"] == 100.0 / 1.5
    assert (clip["peak_mem_mb"], ln_only["peak_mem_mb"], clip["rounds"]) == (10, 5, 2)  # memory: the first round
