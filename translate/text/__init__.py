"""Text for conditioning: everything that turns prompts into embeddings, and text models on disk.

It sits above `translate.models` and `translate.formats` (text networks are built from
`translate.models.conditioned`, folders found by `translate.formats.locator`); their ONNX export and
runner live higher up, in `translate.deploy`. It owns:

- `tokenizer`: `ByteTokenizer`, UTF-8 bytes -> ids `(B, L)` int64 and mask `(B, L)` bool.
- `encoders`: the text encoders behind `encode(texts) -> (B, D)` float32 ("byte", trained with the
  GAN; "minilm" and "clip", frozen, from optional packages) and `build_text_encoder`.
- `matching`: the image-text matcher (CLIP-style contrastive loss, caption bank) that guides
  text2image training.
- `model`: text model weights folders (kind "text2image" | "textcycle": config.json + one
  model.safetensors with the generator and a trainable encoder), `save_text_model` and
  `load_text_model`, written and read by `translate.formats.folder`.
"""

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
