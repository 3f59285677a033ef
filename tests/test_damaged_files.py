"""A damaged trained.safetensors (garbage header, truncated copy): one line naming the file and what to do."""

from __future__ import annotations

import importlib.util
import logging
import shutil

import pytest
import torch
from helpers_train import RECIPE, make_colour_pairs, recipe_config, write_yaml
from safetensors.torch import load_file

import mlilt
from conftest import mlilt_eval, tiny_config
from mlilt.cli import main as mlilt_main
from mlilt.model import DamagedFileError, build_model
from mlilt.train import checkpoint

KINDS = ["garbage-header", "truncated"]


def damage(path, kind: str) -> None:
    """Garbage where the header's length and JSON are, or the file cut in half (an interrupted copy)."""
    data = path.read_bytes()
    path.write_bytes(b"\x7fGARBAGE" + b"#" * 40 + data[48:] if kind == "garbage-header" else data[:len(data) // 2])


def one_error_line(err: str, path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and "damaged" in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def damaged_run(tmp_path, tiny_model_config, request):
    """A run with model/ and one checkpoint; model/trained.safetensors damaged as the test's ``kind`` says."""
    run = tmp_path / "runs" / "lilt_lwa-s0"
    model = build_model(tiny_model_config("lilt_lwa"))
    model.save_trained(run / "model")
    model.save_trained(run / "checkpoints" / "step_00000004")
    weights = run / "model" / "trained.safetensors"
    damage(weights, request.param)
    return run, weights


@pytest.mark.parametrize("damaged_run", KINDS, indirect=True)
def test_load_names_the_damaged_file_and_the_way_out(damaged_run):
    run, weights = damaged_run
    with pytest.raises(DamagedFileError) as caught:
        mlilt.load(run)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{weights}: damaged (")
    assert "--resume" in message and "step_00000004" in message  # the run has a checkpoint to fall back to
    # The checkpoint itself is whole and loads; a damaged checkpoint points elsewhere.
    assert mlilt.load(run / "checkpoints" / "step_00000004").strategy.name == "lilt_lwa"
    ckpt = run / "checkpoints" / "step_00000004" / "trained.safetensors"
    damage(ckpt, "truncated")
    with pytest.raises(DamagedFileError, match="load another checkpoint or the run's model/"):
        mlilt.load(ckpt.parent)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(DamagedFileError, match="train .* again"):
        mlilt.load(run)


@pytest.mark.parametrize("damaged_run", KINDS, indirect=True)
def test_eval_search_and_export_say_it_in_one_line(damaged_run, emoji_like, tmp_path, capsys):
    run, weights = damaged_run
    (tmp_path / "photos").mkdir()
    shutil.copy(next((emoji_like[0] / "images").iterdir()), tmp_path / "photos" / "a.png")
    commands = {"eval": ["eval", str(run), "--eval-set", "emoji-xtd-v1", "--quiet", "--workers", "0"],
                "search": ["search", str(run), "--images", str(tmp_path / "photos"), "red car", "--quiet"],
                "export": ["export", str(run), str(tmp_path / "out")]}
    for name, argv in commands.items():
        capsys.readouterr()
        assert mlilt_main(argv) == 2, name
        assert one_error_line(capsys.readouterr().err, weights).startswith(f"mlilt {name}: error: ")
    assert not (tmp_path / "out").exists()  # export copies nothing of a damaged model
    assert not (run / "eval").exists()


def test_a_damaged_model_config_is_named_too(tmp_path, tiny_model_config):
    build_model(tiny_model_config("lilt_lwa")).save_trained(tmp_path / "m")
    (tmp_path / "m" / "model_config.json").write_text('{"text": {"name_or_pa')
    with pytest.raises(DamagedFileError, match=r"model_config.json: damaged \(not JSON"):
        mlilt.load(tmp_path / "m")


def test_eval_of_a_damaged_run_fails_before_building_the_towers(damaged_run_garbage, emoji_like, monkeypatch):
    """The weights' header is read first: the user does not wait for the base models to load."""
    import mlilt.model

    run, _ = damaged_run_garbage
    monkeypatch.setattr(mlilt.model, "build_model", lambda *a, **k: pytest.fail("towers built before the check"))
    with pytest.raises(DamagedFileError):
        mlilt_eval(run, "--eval-set", "emoji-xtd-v1", "--quiet")


@pytest.fixture
def damaged_run_garbage(tmp_path, tiny_model_config):
    run = tmp_path / "run"
    build_model(tiny_model_config("lilt_lwa")).save_trained(run / "model")
    damage(run / "model" / "trained.safetensors", "garbage-header")
    return run, run / "model" / "trained.safetensors"


# ---- --resume ----------------------------------------------------------------------------------------

STEPS = 6  # 8 pairs, 4 per step; checkpoints at steps 2 and 4, the last step writes model/


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_towers):
    """A finished 6-step run with checkpoints at steps 2 and 4, and its final trained state."""
    from mlilt.train import parse_args, train

    root = tmp_path_factory.mktemp("resume")
    manifest = make_colour_pairs(root / "data", n=8)
    cfg = write_yaml(root / "tiny.yaml", recipe_config(tiny_config(tiny_towers, "lilt_lwa"), manifest,
                                                       batch_size=4, max_steps=STEPS, save_every=2,
                                                       keep_checkpoints=0))
    run_dir = train(parse_args(["--config", str(cfg), "--run_dir", str(root / "run")]))
    assert [s for s, _ in checkpoint.list_checkpoints(run_dir)] == [2, 4]
    return run_dir, load_file(str(run_dir / "model" / "trained.safetensors"))


def _resume(run_dir, caplog) -> list[str]:
    from mlilt.train import parse_args, train

    with caplog.at_level(logging.WARNING):
        train(parse_args(["--run_dir", str(run_dir), "--resume"]))
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", KINDS)
def test_resume_falls_back_to_the_previous_checkpoint(finished_run, tmp_path, caplog, kind):
    run_dir, final = finished_run
    run = shutil.copytree(run_dir, tmp_path / "run")
    shutil.rmtree(run / "model")  # killed after the checkpoint of step 4 ...
    newest = run / "checkpoints" / "step_00000004" / "trained.safetensors"
    damage(newest, kind)          # ... which was damaged since
    warnings = _resume(run, caplog)
    assert any(f"{newest}: damaged (" in w and "resuming from the previous checkpoint, step_00000002" in w
               for w in warnings), warnings
    # Steps 3-6 again from step 2: the same model as the run that was never interrupted.
    assert _same(load_file(str(run / "model" / "trained.safetensors")), final)


@pytest.mark.parametrize("kind", KINDS)
def test_resume_writes_a_damaged_final_model_again(finished_run, tmp_path, caplog, kind):
    run_dir, final = finished_run
    run = shutil.copytree(run_dir, tmp_path / "run")
    weights = run / "model" / "trained.safetensors"
    damage(weights, kind)
    warnings = _resume(run, caplog)
    assert any(f"{weights}: damaged (" in w and "resuming from the last checkpoint" in w for w in warnings), warnings
    assert _same(load_file(str(weights)), final)


def test_resume_with_every_checkpoint_damaged_says_so(finished_run, tmp_path, capsys):
    run_dir, _ = finished_run
    run = shutil.copytree(run_dir, tmp_path / "run")
    shutil.rmtree(run / "model")
    for _, path in checkpoint.list_checkpoints(run):
        damage(path / "trained.safetensors", "truncated")
    # The recipe's main is what a user runs: its errors are one line.
    spec = importlib.util.spec_from_file_location("align_english", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    assert recipe.main(["--run_dir", str(run), "--resume"]) != 0
    # Above the error: the warning that step 4 was skipped, and the towers' loading bars.
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    line = one_error_line("\n".join(errors), run / "checkpoints" / "step_00000002" / "trained.safetensors")
    assert "no earlier checkpoint" in line and "new --run_dir" in line
