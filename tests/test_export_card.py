"""The exported model card's title: the repo id it will be uploaded as, else the run's name; never a placeholder."""

from __future__ import annotations

from mlilt.export import model_card

CONFIG = {"strategy": "lilt_lwa", "embed_dim": 16, "trainable": 1234,
          "text": {"name_or_path": "zoo:multilingual-e5-small", "max_length": 30},
          "vision": {"name": "tf_efficientnet_lite0", "weights": "zoo:tf_efficientnet_lite0", "img_size": 64}}


def _title(card: str) -> str:
    return next(line for line in card.splitlines() if line.startswith("# "))


def test_card_title_is_the_repo_id_or_the_run_name():
    named = model_card(CONFIG, [], repo_id="acme/mlilt-emoji-lilt_lwa", license="mit", run_config={},
                       run_name="lilt_lwa-s0")
    assert _title(named) == "# acme/mlilt-emoji-lilt_lwa"
    unnamed = model_card(CONFIG, [], repo_id="ORG/NAME", license="mit", run_config={}, run_name="lilt_lwa-s0")
    assert _title(unnamed) == "# lilt_lwa-s0"
    assert 'mlilt.load("ORG/NAME")' in unnamed  # the usage lines keep the placeholder to fill in
