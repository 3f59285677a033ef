"""A torch that is not the one torchvision was built for: one line at ``import mlilt``, with the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helpers_train import REPO, subprocess_env
from mlilt import torch_pair


def fake_metadata(monkeypatch, torch: str | None, torchvision: str | None, requires: list[str]) -> None:
    from importlib import metadata

    versions = {"torch": torch, "torchvision": torchvision}

    def version(name):
        if versions.get(name) is None:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    def requirements(name):
        if name != "torchvision" or torchvision is None:
            raise metadata.PackageNotFoundError(name)
        return requires

    monkeypatch.setattr(torch_pair.metadata, "version", version)
    monkeypatch.setattr(torch_pair.metadata, "requires", requirements)


PINNED = ["numpy", "torch==2.13.0", "pillow!=8.3.*,>=5.3.0", "scipy; extra == 'scipy'"]


@pytest.mark.parametrize("torch, torchvision, requires", [
    ("2.13.0", "0.28.0", PINNED),
    ("2.13.1+cpu", "0.28.0+cpu", PINNED),                 # a patch release of the same torch still pairs
    ("2.14.1+cu130", "0.29.1", ["numpy", "torch (>=2.14.0)"]),  # this machine's pair: a lower bound, not a pin
    ("2.14.1", None, []),                                 # no torchvision: nothing to check
    ("2.14.1", "0.29.1", ["numpy", "torch"]),             # no version named: nothing to compare
])
def test_a_matching_pair_passes(monkeypatch, torch, torchvision, requires):
    fake_metadata(monkeypatch, torch, torchvision, requires)
    assert torch_pair.mismatch() is None
    torch_pair.check()


def test_a_mismatched_pair_names_both_versions_and_the_fix(monkeypatch):
    fake_metadata(monkeypatch, "2.14.0+cpu", "0.28.0+cpu", PINNED)
    problem = torch_pair.mismatch()
    assert problem == ('torch 2.14.0+cpu and torchvision 0.28.0+cpu do not match (torchvision 0.28.0+cpu is built '
                       'for torch 2.13); install the pair: pip install "torch==2.13.*" "torchvision==0.28.0" '
                       '--index-url https://download.pytorch.org/whl/cpu')
    with pytest.raises(torch_pair.TorchMismatchError, match="do not match") as caught:
        torch_pair.check()
    assert isinstance(caught.value, ImportError)
    fake_metadata(monkeypatch, None, "0.28.0", PINNED)
    assert torch_pair.mismatch().startswith('no torch and torchvision 0.28.0 do not match')
    assert "--index-url" not in torch_pair.mismatch()  # a PyPI build: no PyTorch index to name


def test_import_mlilt_stops_before_torchvision_is_imported():
    """A fresh interpreter whose metadata says torch 2.12: ``import mlilt`` fails first, torch untouched."""
    script = textwrap.dedent("""
        import sys
        from importlib import metadata
        real = metadata.version
        metadata.version = lambda name: "2.12.0" if name == "torch" else real(name)
        metadata.requires = lambda name: ["torch==2.13.0"]
        try:
            import mlilt
        except ImportError as err:
            print(type(err).__name__, err)
        print("torch imported:", "torch" in sys.modules, "torchvision imported:", "torchvision" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=subprocess_env(), capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    assert out[0].startswith("TorchMismatchError torch 2.12.0 and torchvision ")
    assert 'pip install "torch==2.13.*"' in out[0]
    assert out[1] == "torch imported: False torchvision imported: False"

