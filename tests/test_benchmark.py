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
    # Copies of one step: in fp32 only integer masks are cast; AdamW converts one step counter per trained tensor.
    for r in rows:
        assert 0 < r["copies"] and 0 < r["copy_bytes"] and r["casts"] <= 3, r
    assert lilt["copies"] > clip["copies"]  # each adapter's two bias adds (addmm copies the bias into its output)
    assert lilt["scalar_copies"] < clip["scalar_copies"]  # fewer trained tensors, fewer step counters


def test_memory_budget_fits_a_line_and_checks_it_on_a_held_out_batch(tiny_towers):
    text_dir, _ = tiny_towers
    proc = run([sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--text", str(text_dir),
                "--vision", TINY_VIT["name"], "--img-size", str(TINY_VIT["img_size"]),
                "--vision-kwargs", json.dumps(TINY_VIT["model_kwargs"]), "--no-pretrained", "--text-length", "8",
                "--strategies", "lilt_lwa", "--threads", "1", "--memory-budget", "1", "--fit-batches", "2,4",
                "--check-batch", "3", "--json"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert [(r["strategy"], r["gradient_checkpointing"]) for r in rows] == [("lilt_lwa", False), ("lilt_lwa", True)]
    for r in rows:
        assert r["peak_kind"] == "cpu_max_allocated"  # live tensor bytes replayed, not RSS
        assert set(r["measured_mb"]) == {"2", "4", "3"} and r["fixed_mb"] > 0 and r["per_sample_mb"] > 0
        assert r["check_measured_mb"] == r["measured_mb"]["3"] and r["fit"] == "per_event"
        assert abs(r["check_error"]) < 0.01  # predicted from batches 2 and 4 (batch 1 takes other code paths)
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


def test_step_ratios_pair_the_steps_taken_in_the_same_round(capsys):
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("train_step", REPO / "benchmarks" / "train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    # Round 2 is a fast minute for both: within each round ln_only takes 0.6, 0.5, 0.8 of clip's step.
    # Paired, the median is 0.6; a ratio of the medians (4 / 5) or of the fastest steps (2 / 4) is not.
    timings = {"eager": {"clip": {"step_s_all": [10.0, 4.0, 5.0], "step_cpu_s_all": [20.0, 8.0, 10.0]},
                         "ln_only": {"step_s_all": [6.0, 2.0, 4.0], "step_cpu_s_all": [12.0, 4.0, 8.0]}}}
    rows = [{"strategy": s, "mode": "eager", "peak_mem_mb": mem, "flops": flops, "device": "cpu", "threads": 2,
             "peak_kind": "rss", "mem_over_model_mb": 1, "trainable": 7, "optimizer_state_bytes": 0,
             "forward_flops": flops / 3, "backward_flops": 2 * flops / 3, "adapter_flops": 0}
            for s, mem, flops in (("clip", 10, 100.0), ("ln_only", 5, 60.0))]
    clip, ln_only = bench.add_ratios(bench.add_timings(rows, timings))
    assert ln_only["time_vs_clip"] == ln_only["cpu_vs_clip"] == 0.6 and ln_only["time_vs"] == {"clip": 0.6}
    assert clip["time_vs_clip"] == 1.0 and clip["time_vs"] == {}  # only earlier rows are baselines
    assert (clip["step_s"], ln_only["step_s"], ln_only["step_cpu_s"]) == (5.0, 4.0, 8.0)  # each one's median step
    assert ln_only["flop_per_s"] == 60.0 / 4.0 and ln_only["mem_vs_clip"] == 0.5
    args = types.SimpleNamespace(text="t", vision="v", img_size=None, batch=2, precision="fp32", steps=3, warmup=1)
    bench.print_table(args, rows)
    assert "step ln_only / clip (eager): 0.600x  (per round: 0.600, 0.500, 0.800)" in capsys.readouterr().out


def test_per_event_fit_finds_a_peak_that_moves_with_the_batch():
    """Small batches peak late in backward (gradients), large ones early (activations): peaks alone miss it."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("train_step_memory", REPO / "benchmarks" / "train_step_memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    batches = [8, 16]  # two moments: gradients 4000 + 10 x batch, activations 3000 + 40 x batch, then a small tail
    timelines = [torch.tensor([3000 + 40.0 * b, 4000 + 10.0 * b, 500 + 1.0 * b], dtype=torch.float64) for b in batches]
    lines = bench.fit_moments(batches, timelines)
    assert bench.peak_at(*lines, 16) == (4160, 1)  # where the peak was measured ...
    assert bench.peak_at(*lines, 200) == (11000, 0)  # ... and where it moves
    fixed, per_sample = bench.fit_line(batches, [float(t.max()) for t in timelines])
    assert fixed + per_sample * 200 == 6000  # the line through the peaks: 5000 MB short
    assert bench.largest_batch(*lines, 10000) == (175, 0)  # (10000 - 3000) / 40
    assert bench.largest_batch(*lines, 3000) == (0, 1)  # the fixed part alone is over the budget
    assert bench.largest_batch(lines[0], torch.zeros(3, dtype=torch.float64), 10000) == (None, None)
    assert bench.fit_moments(batches, [timelines[0], timelines[1][:2]]) is None  # sequences that differ
