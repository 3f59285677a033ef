"""Positives by id in the contrastive loss: pairs sharing an image (or group) id are positives, on any process."""

import math
import os

import pytest
import torch
import torch.nn.functional as F
from helpers_train import free_port

from mlilt.train.loss import contrastive_loss

SCALE = torch.tensor(1 / 0.07)


def features(n, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=g), dim=-1), F.normalize(torch.randn(n, dim, generator=g), dim=-1)


def multi_positive_reference(image, text, scale, ids):
    """ALBEF's multi-positive InfoNCE written out row by row: -mean over positives of log softmax, both ways."""
    n = len(ids)
    directions = []
    for rows, columns in ((image, text), (text, image)):
        total = 0.0
        for i in range(n):
            logits = [float(scale) * float(rows[i] @ columns[j]) for j in range(n)]
            log_norm = math.log(sum(math.exp(v) for v in logits))
            positives = [j for j in range(n) if ids[j] == ids[i]]
            total += -sum(logits[j] - log_norm for j in positives) / len(positives)
        directions.append(total / n)
    return sum(directions) / 2


@pytest.mark.parametrize("local_loss", [False, True])
def test_duplicated_ids_give_the_hand_computed_multi_positive_loss(local_loss):
    image, text = features(6)
    ids = torch.tensor([7, 3, 7, 5, 3, 7])  # image 7 three times, image 3 twice
    got = contrastive_loss(image, text, SCALE, ids=ids, local_loss=local_loss)
    assert got.item() == pytest.approx(multi_positive_reference(image, text, SCALE, ids.tolist()), rel=1e-5)
    assert got.item() != pytest.approx(contrastive_loss(image, text, SCALE).item(), rel=1e-3)


def test_loss_is_albefs_written_with_sim_targets():
    image, text = features(5, seed=3)
    ids = torch.tensor([1, 1, 2, 3, 2])
    # ALBEF's ita loss (models/model_retrieval.py), both directions spelled out.
    sim_i2t, sim_t2i = SCALE * image @ text.t(), SCALE * text @ image.t()
    pos = ids.view(-1, 1).eq(ids.view(1, -1)).float()
    sim_targets = pos / pos.sum(1, keepdim=True)
    loss_i2t = -torch.sum(F.log_softmax(sim_i2t, dim=1) * sim_targets, dim=1).mean()
    loss_t2i = -torch.sum(F.log_softmax(sim_t2i, dim=1) * sim_targets, dim=1).mean()
    torch.testing.assert_close(contrastive_loss(image, text, SCALE, ids=ids), (loss_i2t + loss_t2i) / 2)


@pytest.mark.parametrize("local_loss", [False, True])
def test_distinct_ids_give_todays_loss_and_gradients(local_loss):
    image, text = features(6, seed=1)
    leaves = [t.clone().requires_grad_() for t in (image, text, image, text)]
    plain = contrastive_loss(leaves[0], leaves[1], SCALE, local_loss=local_loss)
    by_id = contrastive_loss(leaves[2], leaves[3], SCALE, local_loss=local_loss, ids=torch.tensor([9, 4, 1, 0, -3, 2]))
    plain.backward()
    by_id.backward()
    torch.testing.assert_close(by_id, plain)
    torch.testing.assert_close(leaves[2].grad, leaves[0].grad)
    torch.testing.assert_close(leaves[3].grad, leaves[1].grad)


def test_ids_must_be_one_per_pair():
    image, text = features(4)
    with pytest.raises(ValueError, match=r"ids: expected one per pair \(4\), got shape \(3,\)"):
        contrastive_loss(image, text, SCALE, ids=torch.tensor([1, 2, 3]))


# ---- two gloo processes: the other process's ids count ----------------------------------------------

IDS = [5, 1, 2, 8, 5, 3, 1]  # rank 0 holds rows 0-2, rank 1 rows 3-6: ids 5 and 1 occur on both ranks


def _worker(rank, world, port, out_dir):
    import torch.distributed as dist
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        image, text = features(len(IDS), seed=4)
        rows = slice(0, 3) if rank == 0 else slice(3, len(IDS))
        ids = torch.tensor(IDS)[rows]
        out = {}
        for local_loss in (False, True):
            img, txt = image[rows].clone().requires_grad_(), text[rows].clone().requires_grad_()
            loss = contrastive_loss(img, txt, SCALE, local_loss=local_loss, ids=ids)
            loss.backward()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            out.update({f"loss_{local_loss}": mean / world, f"image_grad_{local_loss}": img.grad,
                        f"text_grad_{local_loss}": txt.grad})
        save_file(out, os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_two_processes_count_a_duplicate_split_across_them_as_a_positive(tmp_path):
    from safetensors.torch import load_file

    image, text = features(len(IDS), seed=4)
    img, txt = image.clone().requires_grad_(), text.clone().requires_grad_()
    single = contrastive_loss(img, txt, SCALE, ids=torch.tensor(IDS))
    single.backward()
    assert single.item() == pytest.approx(multi_positive_reference(image, text, SCALE, IDS), rel=1e-5)

    torch.multiprocessing.start_processes(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True,
                                          start_method="fork")
    got = [load_file(str(tmp_path / f"rank{rank}.safetensors")) for rank in (0, 1)]
    for local_loss in (False, True):
        for rank_out in got:
            torch.testing.assert_close(rank_out[f"loss_{local_loss}"], single.detach(), rtol=1e-5, atol=1e-6)
        # DDP averages: each rank's rows carry the sum over ranks, halved they are the single-process gradients.
        for name, reference in (("image", img.grad), ("text", txt.grad)):
            rows = torch.cat([got[0][f"{name}_grad_{local_loss}"], got[1][f"{name}_grad_{local_loss}"]])
            torch.testing.assert_close(rows / 2, reference, rtol=1e-5, atol=1e-6)
    # Had each process seen only its own ids, rank 1's copies of 5 and 1 would be other images.
    own_only = contrastive_loss(image, text, SCALE, ids=torch.tensor(IDS[:3] + [i + 100 for i in IDS[3:]]))
    assert got[0]["loss_False"].item() != pytest.approx(own_only.item(), rel=1e-3)


# ---- the training step uses the configured ids -----------------------------------------------------

def test_config_chooses_the_ids_and_rejects_unknown_values(tiny_model_config):
    from accelerate import Accelerator

    import mlilt
    from mlilt.train import TrainConfig
    from mlilt.train.loop import prepare_training, training_step

    with pytest.raises(ValueError, match=r"config field positives: must be one of group\|image\|none \(got 'pair'\)"):
        TrainConfig(train_data="x.jsonl", model=tiny_model_config(), positives="pair").validate()
    assert TrainConfig().positives == "group"

    torch.manual_seed(0)
    model = mlilt.build_model(tiny_model_config("lilt_lwa", adapter_zero_init=False)).eval()
    g = torch.Generator().manual_seed(1)
    tokens = model.text.tokenize(["a red cat", "the big dog", "a blue car", "green tree"])
    batch = {"pixels": torch.randn(4, 3, 32, 32, generator=g), **tokens,
             "image_ids": torch.tensor([1, 2, 3, 4]), "group_ids": torch.tensor([1, 1, 3, 3])}
    with torch.no_grad():
        image = model.encode_image(batch["pixels"])
        text = model.encode_text(batch["input_ids"], batch["attention_mask"])
        scale = model.logit_scale()
    expected = {"none": contrastive_loss(image, text, scale),
                "image": contrastive_loss(image, text, scale, ids=batch["image_ids"]),
                "group": contrastive_loss(image, text, scale, ids=batch["group_ids"])}
    assert expected["group"].item() != pytest.approx(expected["none"].item(), rel=1e-4)  # far beyond the rtol below
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    for positives, loss in expected.items():
        model.load_state_dict(initial)
        config = TrainConfig(train_data="x.jsonl", model=tiny_model_config(), positives=positives)
        t = prepare_training(Accelerator(cpu=True), model, config, total_steps=1)
        model.eval()  # no dropout: the step's loss is the reference's
        out = training_step(t, [dict(batch)])
        torch.testing.assert_close(out["loss"], loss, rtol=1e-5, atol=1e-6, msg=positives)


def test_a_run_saved_before_positives_by_id_resumes_on_its_own_objective(tmp_path):
    """A RUN_DIR/config.yaml without the field was trained with `none`; --resume must not switch it to the default."""
    import yaml

    from mlilt.train.config import TrainConfig, config_from_args

    run = tmp_path / "old-run"
    run.mkdir()
    old = TrainConfig(run_dir=str(run)).to_dict()
    old.pop("positives")
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert config_from_args({"resume": True, "run_dir": str(run)}).positives == "none"
    assert config_from_args({"resume": True, "run_dir": str(run), "positives": "image"}).positives == "image"
    assert config_from_args({}).positives == TrainConfig().positives == "group"
