"""Evaluation during training, the best model, scoring every checkpoint, and the divergence guard."""

import json
import math

import pytest
import torch
from conftest import mlilt_eval, tiny_config
from helpers_train import colour_eval_manifest, make_colour_pairs, recipe_config, write_yaml

from mlilt.train import checkpoint, parse_args, train
from mlilt.train.tracking import read_metrics

STEPS = 8  # 16 pairs, 4 per step: 4 steps per epoch, 2 epochs


def trained_file(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "trained.safetensors"))


def same_tensors(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def colour_config(tmp_path, model_config, **fields):
    manifest = make_colour_pairs(tmp_path / "data", n=16)
    values = recipe_config(model_config, manifest, **{"batch_size": 4, "epochs": 2, "save_every": 4,
                                                      "keep_checkpoints": 0, **fields})
    return write_yaml(tmp_path / "tiny.yaml", values), manifest


@pytest.fixture(scope="module")
def evaluated_run(tiny_towers, tmp_path_factory):
    """A run scored every 3 steps on its own pairs (steps 3, 4 = epoch end, 6, 8 = epoch end and last)."""
    tmp = tmp_path_factory.mktemp("evaluated")
    cfg, manifest = colour_config(tmp, tiny_config(tiny_towers))
    eval_set = colour_eval_manifest(manifest)
    run_dir = train(parse_args(["--config", str(cfg), "--run_dir", str(tmp / "run"), "--eval_every", "3",
                                "--eval_set", str(eval_set)]))
    return run_dir, cfg, eval_set


def test_eval_every_logs_the_harness_scores_at_its_steps_epoch_ends_and_the_last(evaluated_run, tmp_path):
    from mlilt.evaluation.harness import EncodeOptions, evaluate_retrieval, load_for_eval
    from mlilt.evaluation.sets import load_eval_set

    run_dir, cfg, eval_set = evaluated_run
    evals = [r for r in read_metrics(run_dir) if "eval/mean" in r]
    assert [r["step"] for r in evals] == [3, 4, 6, 8]
    assert all(0 <= r["eval/en/IR@1"] <= 100 and r["eval/mean"] == r["eval/en/mean"] and r["eval_s"] > 0
               for r in evals)
    # The last evaluation is what `mlilt eval` gives the final model.
    final = evaluate_retrieval(load_for_eval(run_dir), load_eval_set(eval_set), langs=["en"],
                               opts=EncodeOptions(device="cpu", cache=False, progress=False), quiet=True)
    assert evals[-1]["eval/en/mean"] == pytest.approx(final["results"]["en"]["mean"])
    assert (final["run"]["step"], final["run"]["checkpoint"]) == (STEPS, "model")
    # Evaluating draws nothing from the training RNG: the same run without it ends with the same weights.
    plain = train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "plain"), "--eval_every", "0"]))
    assert same_tensors(trained_file(run_dir / "model"), trained_file(plain / "model"))
    assert not any("eval/mean" in r for r in read_metrics(plain))


def test_keep_best_keeps_the_model_of_the_best_evaluation(tiny_model_config, tmp_path, monkeypatch):
    from mlilt.evaluation import harness

    scripted = {3: 10.0, 4: 30.0, 6: 20.0, 8: 25.0}  # the best is step 4, a checkpoint step

    def fake_evaluate(loaded, eval_set, protocol=None, langs=None, **kwargs):
        step = loaded.run["step"]
        return {"results": {"en": {"TR@1": 0.0, "IR@1": 0.0, "mean": scripted[step]}}}

    monkeypatch.setattr(harness, "evaluate_retrieval", fake_evaluate)
    cfg, manifest = colour_config(tmp_path, tiny_model_config())
    run_dir = train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "run"), "--eval_every", "3",
                                "--eval_set", str(colour_eval_manifest(manifest)), "--keep_best", "en/mean"]))
    assert [r["eval/en/mean"] for r in read_metrics(run_dir) if "eval/en/mean" in r] == [10.0, 30.0, 20.0, 25.0]
    best = json.loads((run_dir / "best" / "trainer_state.json").read_text())
    assert (best["step"], best["metric"], best["value"]) == (4, "en/mean", 30.0)
    assert same_tensors(trained_file(run_dir / "best"), trained_file(run_dir / "checkpoints" / "step_00000004"))
    assert not same_tensors(trained_file(run_dir / "best"), trained_file(run_dir / "model"))
    import mlilt

    assert mlilt.load(run_dir / "best").strategy.name == "lilt_lwa"


def test_keep_best_names_a_metric_of_the_evaluation(tiny_model_config, tmp_path):
    cfg, manifest = colour_config(tmp_path, tiny_model_config())
    with pytest.raises(ValueError, match=r"config field keep_best: 'ru/mean' is not a metric"):
        train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "run"), "--keep_best", "ru/mean",
                          "--eval_set", str(colour_eval_manifest(manifest))]))
    with pytest.raises(ValueError, match="config field keep_best: needs evaluation"):
        parse_args(["--config", str(cfg), "--keep_best", "mean", "--eval_every", "0"]).validate()


def test_checkpoints_all_scores_every_saved_model_into_its_own_file(evaluated_run):
    run_dir, _, eval_set = evaluated_run
    assert mlilt_eval(run_dir, "--eval-set", eval_set, "--checkpoints", "all", "--no-cache", "--quiet",
                      "--device", "cpu") == 0
    files = sorted((run_dir / "eval").glob("colours_val_all_step*.json"))
    results = [json.loads(f.read_text()) for f in files]
    assert sorted((r["run"]["step"], r["run"]["checkpoint"]) for r in results) == [
        (4, "checkpoints/step_00000004"), (8, "model")]
    by_step = {r["run"]["step"]: r for r in results}
    assert by_step[4]["model_key"] != by_step[8]["model_key"]
    assert {f.name for f in files} == {"colours_val_all_step4.json", "colours_val_all_step8.json"}
    with pytest.raises(ValueError, match="no checkpoint of step 5 .* saved: 4, 8"):
        mlilt_eval(run_dir, "--eval-set", eval_set, "--checkpoints", "4,5", "--no-cache", "--quiet")


def test_a_nonfinite_step_changes_no_weight_and_is_counted(tiny_model_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLILT_TEST_NAN_AT_STEPS", "3")
    cfg, _ = colour_config(tmp_path, tiny_model_config(), save_every=1, max_steps=5)
    run_dir = train(parse_args(["--config", str(cfg), "--run_dir", str(tmp_path / "run")]))
    saved = {s: trained_file(p) for s, p in checkpoint.list_checkpoints(run_dir)}
    assert same_tensors(saved[2], saved[3]) and not same_tensors(saved[3], saved[4])
    records = {r["step"]: r for r in read_metrics(run_dir)}
    assert math.isnan(records[3]["loss"]) and [records[s]["nonfinite_steps"] for s in (2, 3, 4)] == [0, 1, 1]
    assert json.loads((run_dir / "model" / "trainer_state.json").read_text())["nonfinite_steps"] == 1
    err = capsys.readouterr().err
    assert "step 3: the loss or gradient norm is not finite; the step is skipped" in err
    assert "1 steps were skipped for a non-finite loss or gradient norm" in err


def test_nonfinite_steps_in_a_row_stop_the_run_and_its_checkpoint_resumes_at_a_lower_lr(
        tiny_model_config, tmp_path, monkeypatch):
    from mlilt.train.loop import Diverged, WarmupCosine

    monkeypatch.setenv("MLILT_TEST_NAN_AT_STEPS", "5,6,7")
    cfg, _ = colour_config(tmp_path, tiny_model_config())
    run = tmp_path / "run"
    with pytest.raises(Diverged) as stopped:
        train(parse_args(["--config", str(cfg), "--run_dir", str(run)]))
    message = str(stopped.value)
    assert "\n" not in message and message.startswith("step 7: the loss or gradient norm was not finite in 3 steps")
    assert f"the last good checkpoint is {run / 'checkpoints' / 'step_00000004'} (step 4)" in message
    assert "--resume and a lower --lr" in message
    assert not (run / "model").exists() and [s for s, _ in checkpoint.list_checkpoints(run)] == [4]

    monkeypatch.delenv("MLILT_TEST_NAN_AT_STEPS")
    train(parse_args(["--run_dir", str(run), "--resume", "--lr", "3e-4"]))
    records = {r["step"]: r for r in read_metrics(run)}
    assert sorted(records) == list(range(1, STEPS + 1)) and records[8]["nonfinite_steps"] == 0
    # From step 5 on, the new peak rate's schedule (warm-up 2 steps from 1e-4, cosine to min_lr 1e-4).
    new = WarmupCosine(lr=3e-4, min_lr=1e-4, warmup_lr=1e-4, warmup=2, total=STEPS)
    old = WarmupCosine(lr=1e-3, min_lr=1e-4, warmup_lr=1e-4, warmup=2, total=STEPS)
    assert records[5]["lr"] == pytest.approx(3e-4 * new(4)) and records[5]["lr"] != pytest.approx(1e-3 * old(4))
    assert records[4]["lr"] == pytest.approx(1e-3 * old(3))
    assert all(math.isfinite(records[s]["loss"]) for s in range(5, STEPS + 1))
