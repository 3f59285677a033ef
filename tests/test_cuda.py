"""The CUDA paths: training in bf16/fp16 on a GPU, evaluation on a GPU against the CPU, the benchmark's GPU counters.

Skipped where torch sees no GPU (CI has none); run them on a GPU machine with
``python3 -m pytest -q tests/test_cuda.py``.
"""

import json
import math
import subprocess
import sys

import pytest
import torch

from helpers_train import REPO, make_colour_pairs, recipe_command, recipe_config, run, write_yaml

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def exact_fp32_on_the_gpu():
    """TF32 (cuDNN's default for convolutions) would make GPU-vs-CPU comparisons of fp32 runs loose."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_recipe_trains_on_the_gpu_in_mixed_precision(tiny_model_config, tmp_path, precision):
    import mlilt
    from mlilt.train.tracking import read_metrics

    manifest = make_colour_pairs(tmp_path / "data")
    cfg = write_yaml(tmp_path / "tiny.yaml", recipe_config(tiny_model_config("lilt_lwa"), manifest, batch_size=16,
                                                           epochs=10, lr=2e-3, save_every=10,
                                                           mixed_precision=precision))
    run_dir = tmp_path / "run"
    proc = run(recipe_command("--config", str(cfg), "--run_dir", str(run_dir)), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [r["loss"] for r in read_metrics(run_dir)]
    assert len(losses) == 20 and all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1, losses

    # The trained state reloads onto the GPU and gives the embeddings it gives on the CPU.
    model = mlilt.load(run_dir).eval()
    pixels = torch.rand(4, 3, 32, 32)
    tokens = model.text.tokenize(["a red car", "a blue car", "a green car", "a photo"])
    with torch.inference_mode():
        cpu = model.encode_image(pixels), model.encode_text(tokens["input_ids"], tokens["attention_mask"])
        model.cuda()
        gpu = (model.encode_image(pixels.cuda()).cpu(),
               model.encode_text(tokens["input_ids"].cuda(), tokens["attention_mask"].cuda()).cpu())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b, a, atol=5e-4, rtol=5e-4)


def test_evaluation_encoders_on_the_gpu_match_the_cpu(tiny_model_config, tmp_path):
    from PIL import Image

    from mlilt import build_model
    from mlilt.evaluation.harness import EncodeOptions, encode_images, encode_texts

    model = build_model(tiny_model_config("lilt_lwa")).eval()
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (40, 40), (40 * i, 255 - 40 * i, 90)).save(path)
        paths.append(str(path))
    texts = ["a red car", "the big dog runs", "a small bird on the tree", "photo"]
    options = dict(batch_size=4, text_batch_size=2, cache=False, progress=False)
    cpu_images = encode_images(model, paths, EncodeOptions(device="cpu", precision="fp32", **options))
    cpu_texts = encode_texts(model.cpu(), texts, EncodeOptions(device="cpu", precision="fp32", **options),
                             pooled=True)
    model.cuda()
    for precision, tolerance in (("fp32", 5e-4), ("bf16", 5e-2)):
        gpu = EncodeOptions(device="cuda", precision=precision, **options)
        torch.testing.assert_close(encode_images(model, paths, gpu), cpu_images, atol=tolerance, rtol=tolerance)
        gpu_texts = encode_texts(model, texts, gpu, pooled=True)
        for key in ("embeds", "pooled"):
            torch.testing.assert_close(gpu_texts[key], cpu_texts[key], atol=tolerance, rtol=tolerance)
    assert EncodeOptions(device="cuda").resolved_precision() == ("bf16" if torch.cuda.is_bf16_supported()
                                                                 else "fp32")


def test_benchmark_uses_the_gpu_counters(tiny_towers):
    text_dir, _ = tiny_towers
    cmd = [sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--text", str(text_dir),
           "--vision", "vit_tiny_patch16_224", "--img-size", "32",
           "--vision-kwargs", '{"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}',
           "--no-pretrained", "--batch", "4", "--precision", "bf16", "--strategies", "clip,lilt_lwa",
           "--steps", "2", "--device", "cuda", "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert [r["strategy"] for r in rows] == ["clip", "lilt_lwa"]
    for r in rows:
        assert r["device"] == "cuda" and r["peak_kind"] == "cuda_max_allocated" and r["peak_mem_mb"] > 0
        assert all(math.isfinite(x) for x in r["loss"])
    assert rows[1]["optimizer_state_bytes"] < rows[0]["optimizer_state_bytes"]
