"""mlilt report on every checkpoint of a run (``run.step``): each run at its last step in the tables, and recall
and the text probe against the step, seeds as mean ± std."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest
from test_report import recalls, result, run_cli, write

from mlilt import report as rp

STEPS = (100, 200, 300)


def scored(name: str, strategy: str, seed: int, step: int, checkpoint: str, gain: float) -> dict:
    """A result of one checkpoint: recall grows by ``gain`` per 100 steps (more in English), the probe falls."""
    data = result(name, strategy, seed, tr1={"en": 20.0 + 2 * gain * step / 100 + seed,
                                             "de": 10.0 + gain * step / 100 + seed, "sw": 12.0 + seed},
                  probe={"de": 90.0 - step / 100 - seed, "sw": 70.0 - step / 100})
    data["run"].update(step=step, checkpoint=checkpoint)
    return data


@pytest.fixture
def history(tmp_path):
    """lilt_lwa seeds 0 and 1 and clip seed 0, each scored at three checkpoints; the final model is step 300 too."""
    paths = []
    for strategy, seeds, gain in (("lilt_lwa", (0, 1), 3.0), ("clip", (0,), 1.0)):
        for seed in seeds:
            name = f"{strategy}-s{seed}"
            for step in STEPS:
                data = scored(name, strategy, seed, step, f"checkpoints/step_{step:06d}", gain)
                paths.append(write(tmp_path, f"{name}-{step}.json", data))
            paths.append(write(tmp_path, f"{name}-model.json", scored(name, strategy, seed, 300, "model", gain)))
    return paths


def test_tables_show_each_run_at_its_last_step_and_a_table_follows_the_steps(history):
    report = rp.build_report(rp.load_results(history), baseline="clip")
    t = report.table("retrieval")
    assert t.rows.at["lilt_lwa", "n"] == 2  # one file per seed: the final model, not its checkpoint twin
    assert t.mean.at["lilt_lwa", ("de", "TR@1")] == pytest.approx(10 + 9 + 0.5)
    steps = report.table("steps")
    assert list(steps.rows["step"]) == [100, 200, 300, 100, 200, 300]
    assert list(steps.rows["config"]) == ["lilt_lwa"] * 3 + ["clip-s0"] * 3
    lwa200 = "lilt_lwa @ 200"
    per_seed = [(recalls(10 + 6 + s)["mean"] + recalls(12 + s)["mean"]) / 2 for s in (0, 1)]
    assert steps.mean.at[lwa200, ("recall mean (non-en)", "mean")] == pytest.approx(statistics.mean(per_seed))
    assert steps.std.at[lwa200, ("recall mean (non-en)", "mean")] == pytest.approx(statistics.stdev(per_seed))
    assert steps.mean.at[lwa200, ("recall en", "mean")] == pytest.approx(statistics.mean(
        [recalls(20 + 12 + s)["mean"] for s in (0, 1)]))
    probe = [((90 - 2 - s) + (70 - 2)) / 2 for s in (0, 1)]
    assert steps.mean.at[lwa200, ("text probe mean (non-en)", "en->x@1")] == pytest.approx(statistics.mean(probe))
    assert pd.isna(steps.std.at["clip-s0 @ 100", ("recall en", "mean")])  # one seed: no band


def test_written_report_has_the_step_chart_table_and_csv_rows(history, tmp_path):
    out = tmp_path / "r"
    assert run_cli(["report", *map(str, history), "--baseline", "clip", "--out", str(out)]) == 0
    assert (tmp_path / "r.steps.png").stat().st_size > 0
    md = (tmp_path / "r.md").read_text()
    assert "## Against the training step: mean recall" in md and "| lilt_lwa @ 300 |" in md
    assert "each run at its last step" in md and "checkpoints/step_000100" in md
    csv = pd.read_csv(tmp_path / "r.csv", comment="#")
    steps = csv[csv.table == "steps"]
    assert sorted(steps["step"].astype(int)) == sorted(2 * list(STEPS))


def test_files_without_steps_or_with_one_get_no_step_table(tmp_path):
    one = write(tmp_path, "a.json", scored("lwa-s0", "lilt_lwa", 0, 300, "model", 1.0))
    plain = write(tmp_path, "b.json", result("clip-s0", "clip", 0, percent=100.0))
    assert rp.build_report(rp.load_results([one, plain])).table("steps") is None


def test_curves_are_drawn_against_the_epoch_where_every_file_records_it(history, tmp_path):
    from PIL import Image

    loaded = rp.load_results(history)
    assert rp.build_report(loaded, baseline="clip").steps_per_epoch is None  # no run.epoch: against the step
    for r in loaded:
        r.run["epoch"] = r.step / 50  # 50 steps an epoch
    report = rp.build_report(loaded, baseline="clip")
    assert report.steps_per_epoch == 50
    rp.plot_steps(report, report.table("steps"), tmp_path / "s.png")
    with Image.open(tmp_path / "s.png") as im:
        assert "x: epoch (50 steps each)" in im.text["Description"]
    loaded[0].run["epoch"] = loaded[0].step / 40  # runs that disagree on the epoch's length: against the step
    assert rp.build_report(loaded, baseline="clip").steps_per_epoch is None


def test_a_negative_epoch_is_refused_naming_the_field(tmp_path):
    data = scored("lwa-s0", "lilt_lwa", 0, 300, "model", 1.0)
    data["run"]["epoch"] = -1
    with pytest.raises(rp.ResultFileError, match=r"b\.json: field 'run\.epoch' must be a non-negative number"):
        rp.load_results([write(tmp_path, "b.json", data)])
