"""bf16 training steps of layerwise adapters: the casts and copies they add, and the numbers they give (issue 21)."""

import importlib.util

import pytest
import torch

from helpers_train import REPO
from mlilt import build_model
from mlilt.adapters import Adapter
from mlilt.train.config import TrainConfig
from mlilt.train.loop import prepare_training, training_step
from mlilt.train.loss import contrastive_loss


def old_adapter_forward(self, x):
    """The adapter before issue 21: its input as it comes, so a ViT's fp32 stream stays fp32 through it."""
    return x + self.up(self.act(self.down(x)))


@pytest.fixture
def accelerate_state():
    """Accelerate keeps one process-wide state; each Accelerator here sets its own precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def training(config, precision: str):
    """The training loop's own preparation (Accelerate's autocast, bf16 frozen weights) of ``config`` on the CPU."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    accelerator = Accelerator(cpu=True, mixed_precision=precision)
    torch.manual_seed(0)
    model = build_model(config)
    return prepare_training(accelerator, model, TrainConfig(model=config, batch_size=4, warmup_steps=0,
                                                            mixed_precision=precision), total_steps=4)


def tiny_batch(t) -> dict:
    generator = torch.Generator().manual_seed(1)
    vocab = t.dual.text.model.config.vocab_size
    return {"pixels": torch.randn(4, 3, 32, 32, generator=generator),
            "input_ids": torch.randint(5, vocab, (4, 8), generator=generator),
            "attention_mask": torch.ones(4, 8, dtype=torch.long)}


def loss_and_gradients(t, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward (autocast as ``training_step`` runs it), fp32 loss, backward; the trained parameters' gradients."""
    image, text, scale = t.model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
    loss = contrastive_loss(image, text, scale)
    t.accelerator.backward(loss)
    return loss.detach(), {n: p.grad.clone() for n, p in t.dual.named_parameters() if p.requires_grad}


def count_copies(t, batch: dict) -> dict:
    spec = importlib.util.spec_from_file_location("train_step_ops", REPO / "benchmarks" / "train_step_ops.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.count_copies(t, batch)


def test_bf16_adapters_cast_their_parameters_and_no_activations(tiny_model_config, accelerate_state):
    """lilt_lwa's bf16 step makes ln_only's casts plus two per tensor it adds (its bf16 copy, its gradient back).

    Before issue 21 each ViT adapter also cast the fp32 residual stream down for its matmuls and its bf16 branch
    up for the fp32 sum, both again for the gradients, and the norm after it got fp32 for the next matmul to cast.
    """
    counts = {}
    for strategy in ("ln_only", "lilt_lwa"):
        t = training(tiny_model_config(strategy), "bf16")
        batch = tiny_batch(t)
        training_step(t, [batch])  # AdamW's state exists from the first step on, as in every later one
        counts[strategy] = count_copies(t, batch)
    base, lilt = counts["ln_only"], counts["lilt_lwa"]
    adapters = [*t.dual.text.added_modules, *t.dual.vision.added_modules]
    assert len(adapters) == 8  # two per layer, two layers, two towers
    # What lilt_lwa trains and ln_only does not, in its matmuls: adapters' and projections' weights and biases.
    added = [p for m in [*adapters, t.dual.text_projection, t.dual.vision_projection] for p in m.parameters()]
    assert all(p.requires_grad and p.dtype == torch.float32 for p in added) and len(added) == 4 * 8 + 4
    # Each of them: cast to bf16 for its matmul, its bf16 gradient cast back to fp32; no activation is cast.
    assert lilt["casts"] - base["casts"] <= 2 * len(added), (lilt, base)
    # Issue 21's bar: 1.15x ln_only's copies plus what the adapters' parameters need: 8 casts per adapter and its
    # two bias adds, which addmm makes as copies; plus the projections' 2 casts per tensor (ln_only freezes them).
    assert lilt["copies"] <= 1.15 * base["copies"] + 10 * len(adapters) + 2 * 4, (lilt, base)


def test_bf16_step_of_lilt_lwa_gives_the_old_adapters_loss_and_gradients(tiny_model_config, accelerate_state,
                                                                          monkeypatch):
    """Within bf16 tolerance: the ViT adapters now take their input in bf16 instead of fp32.

    The tolerance is bf16's own, measured here: the fp32 step's gradients are the reference, and the new step
    must be as close to them as the old bf16 step is.
    """
    def error(a, b) -> float:
        return float((a - b).norm() / b.norm().clamp_min(1e-12))

    config = tiny_model_config("lilt_lwa", adapter_zero_init=False)  # every adapter on, so every gradient counts
    runs = {}
    for name, precision in (("new", "bf16"), ("fp32", "no"), ("old", "bf16")):
        with monkeypatch.context() as patch:
            if name == "old":
                patch.setattr(Adapter, "forward", old_adapter_forward)
            t = training(config, precision)
            runs[name] = loss_and_gradients(t, tiny_batch(t))
    (loss, grads), (exact_loss, exact), (old_loss, old_grads) = runs["new"], runs["fp32"], runs["old"]
    assert loss.dtype == torch.float32 and abs(float(loss) - float(old_loss)) < 1e-2 * float(old_loss)
    assert abs(float(loss) - float(exact_loss)) < 2e-2 * float(exact_loss)
    adapter_names = [n for n in grads if ".adapter." in n]
    assert len(adapter_names) == 32 and set(grads) == set(old_grads) == set(exact)
    assert all(g.dtype == torch.float32 for g in grads.values())  # fp32 master weights take fp32 gradients
    bf16_noise = max(error(old_grads[n], exact[n]) for n in exact)
    assert 1e-3 < bf16_noise < 0.1
    for name in grads:
        assert error(grads[name], exact[name]) < 1.25 * bf16_noise, name
        assert error(grads[name], old_grads[name]) < 2 * bf16_noise, name
    # Not the same computation: the fp32 stream is rounded to bf16 once more, at the adapter.
    assert any(not torch.equal(grads[n], old_grads[n]) for n in adapter_names)


def test_fp32_step_is_bit_identical_to_the_old_adapters(tiny_model_config, accelerate_state, monkeypatch):
    """Without autocast nothing is cast: the committed fp32 reports stay what they are."""
    config = tiny_model_config("lilt_lwa", adapter_zero_init=False)
    t = training(config, "no")
    loss, grads = loss_and_gradients(t, tiny_batch(t))
    with monkeypatch.context() as patch:
        patch.setattr(Adapter, "forward", old_adapter_forward)
        old = training(config, "no")
        old_loss, old_grads = loss_and_gradients(old, tiny_batch(old))
    assert torch.equal(loss, old_loss)
    assert set(grads) == set(old_grads) and all(torch.equal(grads[n], old_grads[n]) for n in grads)


def test_adapter_hands_its_norm_the_cpu_autocast_dtype():
    """On the CPU an fp32 input is cast once, and the result stays in bf16 for the norm and the matmuls after it."""
    torch.manual_seed(0)
    adapter = Adapter(16, reduction=4, zero_init=False)
    x = torch.randn(2, 5, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = adapter(x)
        y_bf16 = adapter(x.bfloat16())
    assert y.dtype == y_bf16.dtype == torch.bfloat16 and torch.equal(y, y_bf16)
    assert adapter(x).dtype == torch.float32
    torch.testing.assert_close(y.float(), adapter(x), atol=5e-2, rtol=5e-2)
