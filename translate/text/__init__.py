"""Text for conditioning: the byte tokenizer, the text encoders (`encode(texts) -> (B, D)`), and the
ONNX export / runner of text models."""

from __future__ import annotations

from translate.text.encoders import (
    ByteTextEncoder,
    ClipTextEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    build_text_encoder,
    text_encoder_names,
)
from translate.text.onnx import OnnxTextModel, export_text_onnx
from translate.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer, normalize_text

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "VOCAB_SIZE",
    "ByteTextEncoder",
    "ByteTokenizer",
    "ClipTextEncoder",
    "OnnxTextModel",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "build_text_encoder",
    "export_text_onnx",
    "normalize_text",
    "text_encoder_names",
]
