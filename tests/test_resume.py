"""Checkpoints: a killed run resumes bit for bit; only the trained part is saved, and it is small."""

import json
import signal
import subprocess
import time

import pytest
import torch
from helpers_train import REPO, make_colour_pairs, recipe_command, recipe_config, run, subprocess_env, write_yaml

import mlilt
from mlilt.train import checkpoint
from mlilt.train.tracking import read_metrics

STEPS = 48  # 32 pairs, 8 per step: 4 steps per epoch, 12 epochs
KILL_AT = 8


def kill_after_checkpoint(cfg, run_dir, step: int, steps: int, env: dict, timeout: float) -> None:
    """Start the recipe on ``run_dir``, SIGKILL it as soon as checkpoint ``step`` is complete, check it died mid-run."""
    victim = subprocess.Popen(recipe_command("--config", str(cfg), "--run_dir", str(run_dir)), cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = run_dir / "checkpoints" / checkpoint.checkpoint_name(step)
    deadline = time.monotonic() + timeout
    while not target.exists():
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (run_dir / "model").exists(), "the run finished before the kill"
    done_at_kill = [s for s, _ in checkpoint.list_checkpoints(run_dir)]
    assert step in done_at_kill and max(done_at_kill) < steps


def test_killed_run_resumes_to_the_same_state_bit_for_bit(tiny_model_config, tmp_path):
    from safetensors.torch import load_file

    manifest = make_colour_pairs(tmp_path / "data")
    # Dropout on (tiny BERT: 0.1), augmentation on, a worker process: RNG, data order and augmentation
    # must all come back exactly.
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest,
                                                           max_steps=STEPS, save_every=2, keep_checkpoints=3,
                                                           num_workers=1))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = subprocess_env()
    uninterrupted = subprocess.Popen(recipe_command("--config", str(cfg), "--run_dir", str(whole)), cwd=REPO,
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_after_checkpoint(cfg, killed, KILL_AT, STEPS, env, timeout=180)

    resumed = run(recipe_command("--config", str(cfg), "--run_dir", str(killed), "--resume"), timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert uninterrupted.wait(timeout=240) == 0, uninterrupted.stderr.read()[-3000:]

    a = load_file(str(whole / "model" / "trained.safetensors"))
    b = load_file(str(killed / "model" / "trained.safetensors"))
    assert set(a) == set(b) and len(a) > 10
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    # Training moved the parameters (the comparison is not vacuous) ...
    initial = mlilt.build_model(tiny_model_config("lilt_lwa")).trained_state_dict()
    assert any(not torch.equal(initial[k], a[k]) for k in a)
    # ... and the resumed run logged each step once, with the uninterrupted run's losses.
    whole_log, killed_log = read_metrics(whole), read_metrics(killed)
    assert [r["step"] for r in killed_log] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in killed_log] == [r["loss"] for r in whole_log]
    # Only the last 3 checkpoints stay (the last step writes model/ alone), no temporaries, mlilt.load reads it.
    assert [s for s, _ in checkpoint.list_checkpoints(killed)] == [STEPS - 6, STEPS - 4, STEPS - 2]
    assert json.loads((killed / "model" / "trainer_state.json").read_text())["step"] == STEPS
    assert not (killed / "model" / "state").exists()
    assert not list(killed.rglob(".tmp-*"))
    assert mlilt.load(killed).strategy.name == "lilt_lwa"


def test_a_run_directory_is_not_overwritten_without_resume(tiny_model_config, tmp_path):
    from mlilt.train import parse_args, train

    manifest = make_colour_pairs(tmp_path / "data", n=8)
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest, max_steps=2,
                                                           save_every=1))
    args = ["--config", str(cfg), "--run_dir", str(tmp_path / "run")]
    run_dir = train(parse_args(args))  # in this process: two steps
    state = json.loads((run_dir / "checkpoints" / "step_00000001" / "trainer_state.json").read_text())
    assert state["step"] == 1
    files = {p.name for p in (run_dir / "checkpoints" / "step_00000001" / "state").iterdir()}
    assert "optimizer.bin" in files and not any(name.startswith(("model", "pytorch_model")) for name in files)
    # The last step is the final model alone: no checkpoint, no optimizer state beside it.
    assert [s for s, _ in checkpoint.list_checkpoints(run_dir)] == [1]
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["model_config.json", "trained.safetensors",
                                                                     "trainer_state.json"]
    with pytest.raises(ValueError, match="--resume"):
        train(parse_args(args))
    # Resuming a finished run changes nothing.
    weights = (run_dir / "model" / "trained.safetensors").read_bytes()
    assert train(parse_args(args + ["--resume"])) == run_dir
    assert (run_dir / "model" / "trained.safetensors").read_bytes() == weights


def test_data_order_depends_on_seed_and_step_only():
    from mlilt.train.batches import StepOrder

    def steps(world, accum, start=0, seed=0, epoch=1):
        """Pairs of each optimizer step, over all processes and micro-batches."""
        per_rank = [list(StepOrder(50, seed=seed, epoch=epoch, batch_size=8, accum=accum, rank=r, world=world,
                                   start_step=start)) for r in range(world)]
        micro = 8 // (accum * world)
        out = []
        for step in range(len(per_rank[0]) // (micro * accum)):
            pairs = []
            for m in range(accum):
                for r in range(world):
                    begin = (step * accum + m) * micro
                    pairs += per_rank[r][begin:begin + micro]
            out.append(pairs)
        return out

    single = steps(1, 1)
    assert len(single) == 6 and len({i for step in single for i in step}) == 48  # 50 pairs: 6 whole steps
    assert steps(2, 2) == single and steps(4, 1) == single and steps(2, 1) == single
    assert steps(2, 2, start=4) == single[4:]                                    # resuming at step 4
    assert steps(1, 1, seed=1) != single and steps(1, 1, epoch=2) != single


# ---- size of the saved trained state ------------------------------------------------------------


def test_safetensors_size_is_predicted_exactly_on_a_real_file(tiny_model_config, tmp_path):
    model = mlilt.build_model(tiny_model_config("lilt_lwa"))
    model.save_trained(tmp_path)
    assert (tmp_path / "trained.safetensors").stat().st_size == checkpoint.trained_state_nbytes(model)


@pytest.mark.parametrize("strategy, limit_mb", [("lilt_lwa", 60), ("clip", None)])
def test_paper_model_trained_state_is_small(strategy, limit_mb):
    """mBERT-base + DeiT-B at 256 px, built on the meta device: bytes from shapes and dtypes."""
    config = mlilt.ModelConfig(
        text=mlilt.TextTowerConfig(str(REPO / "recipes/configs/architectures/bert-base-multilingual-cased.json"),
                                   pretrained=False),
        vision=mlilt.VisionTowerConfig("deit_base_patch16_224", pretrained=False, img_size=256),
        strategy=strategy)
    with torch.device("meta"):
        model = mlilt.build_model(config)
    size_mb = checkpoint.trained_state_nbytes(model) / 1e6
    if limit_mb:
        assert size_mb <= limit_mb, size_mb
        assert 14.6e6 < mlilt.count(model)["trainable"] < 14.8e6  # Table 3: 14.67 M
    else:
        assert size_mb > 1000  # the whole model: ~1 GB in fp32


# ---- streamed sources (webdataset shards) -------------------------------------------------------


def _resume_from(run_dir, step: int) -> dict:
    """Make ``run_dir`` look killed right after checkpoint ``step``; returns the final state it had."""
    import shutil

    from safetensors.torch import load_file

    final = load_file(str(run_dir / "model" / "trained.safetensors"))
    shutil.rmtree(run_dir / "model")
    for s, path in checkpoint.list_checkpoints(run_dir):
        if s > step:
            shutil.rmtree(path)
    return final


def _assert_same_state(a: dict, b: dict) -> None:
    assert set(a) == set(b) and len(a) > 10
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_streamed_shards_train_and_resume_at_their_record_bit_for_bit(tiny_model_config, tmp_path):
    from safetensors.torch import load_file

    from helpers_train import make_colour_shards
    from mlilt.train import parse_args, train

    # 3 shards x 8 pairs, 8 per step: 3 steps per epoch; 12 steps cross epochs 0-3, the resume point
    # (step 7) lies inside epoch 2, and two workers decode.
    shards = make_colour_shards(tmp_path / "shards")
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), shards,
                                                           train_format="webdataset", max_steps=12, save_every=7,
                                                           keep_checkpoints=0, num_workers=2, shuffle_buffer=5,
                                                           lr=2e-3))
    run_dir = tmp_path / "run"
    train(parse_args(["--config", str(cfg), "--run_dir", str(run_dir)]))
    losses = [r["loss"] for r in read_metrics(run_dir)]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses
    state = json.loads((run_dir / "checkpoints" / "step_00000007" / "trainer_state.json").read_text())
    assert state["streams"] == [{"epoch": 2, "position": 8}]  # 7 steps = 2 epochs of 3 + 1 step

    final = _resume_from(run_dir, 7)
    train(parse_args(["--config", str(cfg), "--run_dir", str(run_dir), "--resume", "--num_workers", "0"]))
    _assert_same_state(final, load_file(str(run_dir / "model" / "trained.safetensors")))
    assert [r["loss"] for r in read_metrics(run_dir)] == losses


def test_streamed_shards_need_max_steps(tiny_model_config, tmp_path):
    from helpers_train import make_colour_shards
    from mlilt.train import parse_args, train

    shards = make_colour_shards(tmp_path / "shards", shards=1)
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), shards,
                                                           train_format="webdataset"))
    with pytest.raises(ValueError, match="config field max_steps: .* streamed"):
        train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "run")]))


# ---- compiled training (accelerate launch --dynamo_backend inductor) ----------------------------


def test_compiled_run_killed_and_resumed_matches_an_uninterrupted_compiled_run(tiny_model_config, tmp_path):
    """`accelerate launch --dynamo_backend inductor` sets ACCELERATE_DYNAMO_BACKEND; the recipe's Accelerator honours it.

    The runs go one after the other and share one inductor cache: the first pays the compilation (minutes
    on two cores), the killed and the resumed run load its kernels.
    """
    from safetensors.torch import load_file

    steps, kill_at = 24, 4
    manifest = make_colour_pairs(tmp_path / "data")
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest, max_steps=steps,
                                                           save_every=2, keep_checkpoints=2))
    whole, killed, cache = tmp_path / "whole", tmp_path / "killed", tmp_path / "inductor"
    env = dict(ACCELERATE_DYNAMO_BACKEND="INDUCTOR", TORCHINDUCTOR_CACHE_DIR=str(cache))
    uninterrupted = run(recipe_command("--config", str(cfg), "--run_dir", str(whole)), timeout=1200, **env)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    assert any(cache.rglob("*.so")), "inductor built no kernels: the run was not compiled"

    kill_after_checkpoint(cfg, killed, kill_at, steps, subprocess_env(**env), timeout=300)

    resumed = run(recipe_command("--config", str(cfg), "--run_dir", str(killed), "--resume"), timeout=600, **env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    # Clean parameter names (no torch.compile `_orig_mod.` prefix): the checkpoint loads uncompiled.
    a = load_file(str(whole / "model" / "trained.safetensors"))
    assert not [k for k in a if "_orig_mod" in k]
    _assert_same_state(a, load_file(str(killed / "model" / "trained.safetensors")))
    initial = mlilt.build_model(tiny_model_config("lilt_lwa")).trained_state_dict()
    assert any(not torch.equal(initial[k], a[k]) for k in a)
    whole_log, killed_log = read_metrics(whole), read_metrics(killed)
    assert [r["step"] for r in killed_log] == list(range(1, steps + 1))
    assert [r["loss"] for r in killed_log] == [r["loss"] for r in whole_log]
    assert mlilt.load(killed).strategy.name == "lilt_lwa"
