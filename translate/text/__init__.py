"""Text for conditioning: the byte tokenizer, the text encoders (`encode(texts) -> (B, D)`), image-text
matching, and text models (a generator with its text encoder) rebuilt from their folders. Their ONNX
export and runner live in `translate.deploy.text_export`."""

from __future__ import annotations

from translate.text.encoders import (
    ByteTextEncoder,
    ClipTextEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    build_text_encoder,
    text_encoder_names,
)
from translate.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer, normalize_text

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "VOCAB_SIZE",
    "ByteTextEncoder",
    "ByteTokenizer",
    "ClipTextEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "build_text_encoder",
    "normalize_text",
    "text_encoder_names",
]
