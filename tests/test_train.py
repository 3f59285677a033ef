"""Training: configuration, optimizer and schedule, DDP gradients equal to one process, the recipe on two processes."""

import dataclasses
import itertools
import json
import math
import os
import sys

import pytest
import torch
import yaml
from helpers_train import (REPO, colour_eval_manifest, free_port, make_colour_pairs, recipe_command, recipe_config, run,
                           write_yaml)

import mlilt
from mlilt.train.config import TrainConfig, load_yaml, parse_args, save_yaml
from mlilt.train.loop import WarmupCosine, build_optimizer, parameter_groups

# ---- configuration ------------------------------------------------------------------------------


def test_paper_configs_hold_the_paper_hyper_parameters():
    for name, strategy in (("paper_mbert_deit.yaml", "lilt_lwa"), ("paper_mbert_deit_clip.yaml", "clip")):
        c = load_yaml(REPO / "recipes" / "configs" / name)
        assert c.model.strategy == strategy
        assert c.model.text.name_or_path == "bert-base-multilingual-cased" and c.model.text.max_length == 30
        assert c.model.vision.name == "deit_base_patch16_224" and c.model.vision.img_size == 256
        assert (c.batch_size, c.lr, c.weight_decay, c.min_lr, c.epochs) == (512, 1e-4, 0.02, 1e-5, 15)
        assert c.train_format == "coco_karpathy" and c.train_split == "train"


def test_command_line_overrides_the_file_and_types_are_checked(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"lr": 2e-4, "model": {"strategy": "lilt_da"}, "train_data": "x.jsonl"})
    c = parse_args(["--config", str(path), "--lr", "3e-4", "--model.vision.img_size", "224", "--batch-size", "64",
                    "--max_grad_norm", "none", "--resume", "--model.vision.model_kwargs", "{drop_path_rate: 0.1}"])
    assert c.lr == 3e-4 and c.batch_size == 64 and c.resume is True and c.max_grad_norm is None
    assert c.model.strategy == "lilt_da"                 # from the file
    assert c.model.vision.img_size == 224 and c.model.vision.name == "deit_base_patch16_224"  # merged, not replaced
    assert c.model.vision.model_kwargs == {"drop_path_rate": 0.1}
    with pytest.raises(ValueError, match="field lr"):
        parse_args(["--lr", "fast"])
    with pytest.raises(ValueError, match=r"c2.yaml.*model.vision.nme"):
        load_yaml(write_yaml(tmp_path / "c2.yaml", {"model": {"vision": {"nme": "x"}}}))


def test_yaml_round_trip_and_missing_data_is_a_clear_error(tmp_path):
    c = parse_args(["--train_data", "pairs.jsonl", "--seed", "7"])
    assert load_yaml(save_yaml(c, tmp_path / "config.yaml")) == c
    with pytest.raises(ValueError, match="train_data.*--config"):
        TrainConfig().validate()


def test_resume_without_config_reads_the_run_config(tmp_path):
    run_dir = tmp_path / "run"
    config = parse_args(["--train_data", "p.jsonl", "--lr", "5e-4", "--run_dir", str(run_dir)])
    save_yaml(config, run_dir / "config.yaml")
    c = parse_args(["--run_dir", str(run_dir), "--resume"])
    assert c.lr == 5e-4 and c.train_data == "p.jsonl" and c.resume


def test_recipe_without_arguments_runs_the_embedded_default():
    import importlib.util

    spec = importlib.util.spec_from_file_location("align_english", REPO / "recipes" / "align_english.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    config = recipe.parse_recipe_args([])
    # layerwise adapters on both sides (CNN towers take them since issue 9), on emoji-XTD v2;
    # emoji_xtd_v1.yaml (the committed report) kept the deep vision block and v1's names
    assert (config.train_data, config.model.strategy, config.model.vision_adapter) == ("emoji-xtd", "lilt_lwa", None)
    v1 = recipe.parse_recipe_args(["--config", str(REPO / "recipes/configs/emoji_xtd_v1.yaml")]).model
    assert (v1.strategy, v1.vision_adapter, v1.vision.name) == ("lilt_lwa", "deep", "tf_efficientnet_lite0")
    v1_data = recipe.parse_recipe_args(["--config", str(REPO / "recipes/configs/emoji_xtd_v1.yaml")]).train_data
    assert v1_data == "emoji-xtd-v1"
    assert config.model.text.name_or_path == "zoo:multilingual-e5-small"
    assert recipe.parse_recipe_args(["--model.strategy", "clip"]).model.strategy == "clip"
    assert recipe.parse_recipe_args(["--config", str(REPO / "recipes/configs/paper_mbert_deit.yaml")]).model.vision.img_size == 256


# ---- optimizer and schedule ---------------------------------------------------------------------


def test_optimizer_gets_trainable_parameters_only_and_no_decay_below_two_dims(tiny_model_config):
    model = mlilt.build_model(tiny_model_config("lilt_lwa"))
    decay, no_decay = parameter_groups(model, 0.02)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in decay["params"] + no_decay["params"]} == trainable
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert any(p is model.temperature for p in no_decay["params"])
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.02, 0.0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(mlilt.build_model(tiny_model_config("frozen")), TrainConfig())


def test_warmup_then_cosine_to_min_lr():
    s = WarmupCosine(lr=1e-4, min_lr=1e-5, warmup_lr=1e-5, warmup=10, total=110)
    assert math.isclose(s(0) * 1e-4, 1e-5) and math.isclose(s(5) * 1e-4, 5.5e-5)
    assert math.isclose(s(10), 1.0) and math.isclose(s(60) * 1e-4, 5.5e-5)
    assert math.isclose(s(110) * 1e-4, 1e-5) and math.isclose(s(500) * 1e-4, 1e-5)
    values = [s(i) for i in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def _loss_and_grads(model, batch, autocast_dtype=None):
    from mlilt.train.loop import ContrastiveModel
    from mlilt.train.loss import contrastive_loss

    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        image, text, scale = ContrastiveModel(model)(*batch)
    loss = contrastive_loss(image, text, scale)
    loss.backward()
    return loss.detach(), {k: p.grad for k, p in model.named_parameters() if p.requires_grad}


def _tiny_batch(model, n=4):
    tokens = model.text.tokenize(["a red cat", "the big dog runs", "a photo of a blue car", "green tree house"][:n])
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)), tokens["input_ids"], \
        tokens["attention_mask"]


def test_frozen_weights_cast_to_bf16_give_identical_results_under_autocast(tiny_model_config):
    import copy

    from mlilt.train.loop import cast_frozen_matmul_weights

    torch.manual_seed(0)
    plain = mlilt.build_model(tiny_model_config("lilt_lwa", adapter_zero_init=False)).eval()
    cast = copy.deepcopy(plain)
    assert cast_frozen_matmul_weights(cast, torch.bfloat16) > 0
    assert all(p.dtype == torch.float32 for p in cast.parameters() if p.requires_grad)
    batch = _tiny_batch(plain)
    loss_a, grads_a = _loss_and_grads(plain, batch, torch.bfloat16)
    loss_b, grads_b = _loss_and_grads(cast, batch, torch.bfloat16)
    assert torch.equal(loss_a, loss_b) and loss_a.dtype == torch.float32
    assert all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_config):
    import copy

    from mlilt.train.loop import enable_gradient_checkpointing

    torch.manual_seed(0)
    plain = mlilt.build_model(tiny_model_config("lilt_lwa", adapter_zero_init=False)).eval()
    checkpointed = copy.deepcopy(plain)
    assert enable_gradient_checkpointing(checkpointed) == ["text", "vision"]
    checkpointed.train()
    for m in checkpointed.modules():  # train mode (checkpointing is active only in training), no dropout
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    batch = _tiny_batch(plain)
    loss_a, grads_a = _loss_and_grads(plain, batch)
    loss_b, grads_b = _loss_and_grads(checkpointed, batch)
    torch.testing.assert_close(loss_a, loss_b)
    for k in grads_a:
        torch.testing.assert_close(grads_a[k], grads_b[k], rtol=1e-5, atol=1e-6)


# ---- two processes (gloo) give the single-process loss and gradients ----------------------------

VARIANTS = {  # name: (local_loss, rows on rank 0)
    "full": (False, 4), "local": (True, 4), "full_uneven": (False, 3), "local_uneven": (True, 3)}


def _ddp_worker(rank, world, port, model_config, batch_path, out_dir):
    """One process of the 2-process run: DDP over the real ContrastiveModel, the library's loss."""
    import torch.distributed as dist
    from safetensors.torch import load_file, save_file
    from torch.nn.parallel import DistributedDataParallel

    from mlilt.model import ModelConfig
    from mlilt.train.loop import ContrastiveModel
    from mlilt.train.loss import contrastive_loss

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = mlilt.build_model(ModelConfig.from_dict(model_config)).eval()  # eval: no dropout
        ddp = DistributedDataParallel(ContrastiveModel(model))
        batch = load_file(batch_path)
        total = batch["pixels"].shape[0]
        for name, (local_loss, first_rows) in VARIANTS.items():
            rows = slice(0, first_rows) if rank == 0 else slice(first_rows, total)
            image, text, scale = ddp(batch["pixels"][rows], batch["input_ids"][rows], batch["attention_mask"][rows])
            loss = contrastive_loss(image, text, scale, local_loss=local_loss)
            loss.backward()
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            out = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
            out["__loss__"] = mean_loss / world
            save_file(out, os.path.join(out_dir, f"{name}_{rank}.safetensors"))
            ddp.zero_grad(set_to_none=True)
    finally:
        dist.destroy_process_group()


def test_two_process_loss_and_gradients_equal_one_process_on_the_concatenated_batch(tiny_model_config, tmp_path):
    from safetensors.torch import load_file, save_file

    from mlilt.train.loss import contrastive_loss

    config = tiny_model_config("lilt_lwa", adapter_zero_init=False)  # non-zero adapters: every gradient is live
    torch.manual_seed(0)
    model = mlilt.build_model(config).eval()
    g = torch.Generator().manual_seed(1)
    captions = ["a red cat", "the big dog runs", "a photo of a blue car", "green tree house",
                "a small bird", "the red car", "a dog on the house", "big green tree"]
    tokens = model.text.tokenize(captions)
    batch = {"pixels": torch.randn(8, 3, 32, 32, generator=g), **tokens}
    save_file(batch, str(tmp_path / "batch.safetensors"))

    image = model.encode_image(batch["pixels"])
    text = model.encode_text(batch["input_ids"], batch["attention_mask"])
    reference = contrastive_loss(image, text, model.logit_scale())
    reference.backward()
    expected = {k: p.grad for k, p in model.named_parameters() if p.requires_grad}

    # fork: the children start in a second instead of re-importing torch; they run one thread each, as
    # DataLoader workers do, so the parent's OpenMP pool is never used after the fork.
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(2, free_port(), dataclasses.asdict(config), str(tmp_path / "batch.safetensors"),
                           str(tmp_path)), nprocs=2, join=True, start_method="fork")
    for name in VARIANTS:
        got = [load_file(str(tmp_path / f"{name}_{rank}.safetensors")) for rank in (0, 1)]
        for rank_out in got:
            torch.testing.assert_close(rank_out.pop("__loss__"), reference.detach(), rtol=1e-5, atol=1e-5)
            assert set(rank_out) == set(expected)
            for key, grad in expected.items():
                torch.testing.assert_close(rank_out[key], grad, rtol=1e-5, atol=1e-5, msg=f"{name}: {key}")


# ---- the recipe end to end on two real processes ------------------------------------------------


def test_recipe_trains_on_two_processes_with_accelerate_launch(tiny_model_config, tmp_path):
    manifest = make_colour_pairs(tmp_path / "data")
    # Evaluated at each epoch's end (every 2 steps) on the main process while the other waits.
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest, batch_size=16,
                                                           epochs=10, lr=2e-3, warmup_steps=2, save_every=10,
                                                           eval_set=str(colour_eval_manifest(manifest)),
                                                           keep_best="mean"))
    run_dir = tmp_path / "run"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    proc = run(launch + recipe_command("--config", str(cfg), "--run_dir", str(run_dir))[1:], timeout=300,
               ACCELERATE_USE_CPU="true")
    assert proc.returncode == 0, proc.stderr[-3000:]

    from mlilt.train.tracking import read_metrics

    records = [r for r in read_metrics(run_dir) if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, 21))  # 32 pairs / 16 per step x 10 epochs
    evaluated = [r for r in read_metrics(run_dir) if "eval/mean" in r]
    assert [r["step"] for r in evaluated] == list(range(2, 21, 2))
    best = json.loads((run_dir / "best" / "trainer_state.json").read_text())
    assert best["value"] == max(r["eval/mean"] for r in evaluated)
    losses = [r["loss"] for r in records]
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.1, losses
    state = json.loads((run_dir / "model" / "trainer_state.json").read_text())
    assert state["step"] == 20 and state["processes"] == 2 and state["skipped_images"] == 0
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000010"]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["train_data"] == str(manifest) and saved["seed"] == 0 and saved["train_format"] == "jsonl"
    model = mlilt.load(run_dir)
    assert model.strategy.name == "lilt_lwa"
    trained = load_trained_file(run_dir / "model")
    assert set(trained) == set(model.trained_state_dict())


def load_trained_file(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "trained.safetensors"))


def test_unreadable_images_are_skipped_counted_and_logged(tiny_model_config, tmp_path, capsys, caplog):
    from mlilt.train import parse_args, train
    from mlilt.train.tracking import read_metrics

    manifest = make_colour_pairs(tmp_path / "data", n=8)
    (tmp_path / "data" / "images" / "003.png").write_bytes(b"not an image")
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest, max_steps=2))
    run_dir = train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "run")]))
    records = read_metrics(run_dir)
    # 8 pairs, 8 per step: every step is one epoch and meets the broken file once.
    assert [r["skipped_images"] for r in records] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in records)
    state = json.loads((run_dir / "model" / "trainer_state.json").read_text())
    assert state["skipped_images"] == 2
    # The loader's warning says it comes from loading (a prefetched batch may never be trained on);
    # the end of the run gives the count of the steps trained.
    assert "loading data: skipping unreadable image" in caplog.text and "003.png" in caplog.text
    assert "2 unreadable images were skipped in the 2 steps trained" in capsys.readouterr().err


def test_streamed_shards_train_on_two_processes_and_resume(tiny_model_config, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from helpers_train import make_colour_shards
    from mlilt.train.tracking import read_metrics

    # 4 shards of 8: each process streams 2 shards (16 pairs), 4 per micro-batch -> 4 steps per epoch.
    shards = make_colour_shards(tmp_path / "shards", shards=4)
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), shards,
                                                           train_format="webdataset", max_steps=6, save_every=3,
                                                           keep_checkpoints=0, shuffle_buffer=4))
    run_dir = tmp_path / "run"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    for extra in ([], ["--resume"]):
        proc = run(launch + ["--main_process_port", str(free_port())]
                   + recipe_command("--config", str(cfg), "--run_dir", str(run_dir), *extra)[1:],
                   timeout=300, ACCELERATE_USE_CPU="true")
        assert proc.returncode == 0, proc.stderr[-3000:]
        if not extra:
            state = json.loads((run_dir / "model" / "trainer_state.json").read_text())
            assert state["streams"] == [{"epoch": 1, "position": 8}] * 2  # each process: 4 steps, then 2 more
            whole = load_file(str(run_dir / "model" / "trained.safetensors"))
            losses = [r["loss"] for r in read_metrics(run_dir)]
            shutil.rmtree(run_dir / "model")  # as if killed after checkpoint step_00000003
    resumed = load_file(str(run_dir / "model" / "trained.safetensors"))
    assert [k for k in whole if not torch.equal(whole[k], resumed[k])] == []
    assert [r["loss"] for r in read_metrics(run_dir)] == losses


def test_metrics_reach_tensorboard_when_it_is_installed(tiny_model_config, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mlilt.train import parse_args, train

    manifest = make_colour_pairs(tmp_path / "data", n=8)
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest, max_steps=3))
    run_dir = train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "run")]))
    [events] = {p.parent for p in run_dir.rglob("events.out.tfevents.*")}
    scalars = EventAccumulator(str(events)).Reload()
    assert [e.step for e in scalars.Scalars("loss")] == [1, 2, 3]
    assert {"lr", "temperature", "skipped_images"} <= set(scalars.Tags()["scalars"])
