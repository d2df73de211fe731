"""Tokenizer-free byte-level text encoding: the exact rule the ONNX text encoders expect.

    ids, mask = ByteTokenizer(max_length=64).encode(["Red  Circle", "a map"])
    ids   # (2, L) int64: 1 = BOS, UTF-8 byte + 3, 2 = EOS, 0 = PAD
    mask  # (2, L) bool: True on real tokens (BOS, bytes, EOS), False on padding

The rule, step by step (docs/text.md restates it for clients in other languages):
1. normalise: Unicode default lowercase (Python `str.lower`), then NFC, then every run of ASCII
   whitespace (tab, LF, VT, FF, CR, space) becomes one space, and leading / trailing spaces go;
2. encode the normalised text as UTF-8 bytes and keep the first `max_length - 2` of them (a cut
   may split a multi-byte character: the model sees bytes, not characters);
3. ids = [BOS] + [byte + 3 for each byte] + [EOS];
4. right-pad every row with PAD to the longest row of the batch; mask is True where id != PAD.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["PAD_ID", "BOS_ID", "EOS_ID", "BYTE_OFFSET", "VOCAB_SIZE", "normalize_text", "ByteTokenizer"]

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
BYTE_OFFSET = 3  # byte b has id b + 3
VOCAB_SIZE = 256 + BYTE_OFFSET

# ASCII whitespace only (not Python's Unicode-aware \s): a rule any client reproduces exactly.
_WHITESPACE = re.compile(r"[\t\n\x0b\x0c\r ]+")


def normalize_text(text: str) -> str:
    """Lowercase, NFC, collapse ASCII whitespace runs to one space and strip: "Red  Circle" -> "red circle"."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    # Lowercasing can produce combining sequences (e.g. "İ" -> "i" + U+0307), so NFC comes after it.
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text.lower())).strip(" ")


class ByteTokenizer:
    """Texts -> `(ids (B, L) int64, mask (B, L) bool)` with 2 <= L <= max_length (see the module doc)."""

    def __init__(self, max_length: int = 64) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2 (room for BOS and EOS), got {max_length!r}")
        self.max_length = max_length

    def __repr__(self) -> str:
        return f"ByteTokenizer(max_length={self.max_length})"

    def ids(self, text: str) -> list[int]:
        """One text's ids, BOS and EOS included, unpadded; at most `max_length` of them."""
        data = normalize_text(text).encode("utf-8")[: self.max_length - 2]
        return [BOS_ID, *(b + BYTE_OFFSET for b in data), EOS_ID]

    def encode(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """`texts` (B strings) -> ids `(B, L)` int64 and mask `(B, L)` bool, L = longest row.

        Raises:
            TypeError: `texts` is a single str (wrap it: [text]) or holds a non-str.
            ValueError: `texts` is empty.
        """
        if isinstance(texts, str):
            raise TypeError(f"encode takes a list of texts, got the str {texts!r}; pass [text]")
        rows = [self.ids(text) for text in texts]
        if not rows:
            raise ValueError("encode got no texts; pass at least one string")
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), PAD_ID, dtype=torch.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        return ids, ids != PAD_ID
