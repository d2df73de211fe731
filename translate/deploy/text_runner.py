"""`OnnxTextModel`: a text model exported by `translate.deploy.text_export`, run on ONNX Runtime.

    model = OnnxTextModel("shapes.onnx")
    images = model.generate(["a red circle"], n=4, seed=0)         # (4, 3, S, S) in [-1, 1], as PyTorch
    maps = OnnxTextModel("tc.onnx").translate(aerial, "map")       # (B, 3, H, W) in [-1, 1]

The file's text input decides what the runner feeds: ids and mask from `ByteTokenizer(max_length)`,
embeddings from the encoder file written beside (OUT.text_encoder.onnx), or a baked prompt's row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from translate.core.images import array_to_tensor, tensor_to_array
from translate.deploy.onnx_common import OUTPUT_NAME
from translate.deploy.sessions import CPU_PROVIDER, ProviderEntry, ort_session, torch_threads
from translate.formats.onnx_metadata import read_onnx_metadata
from translate.text.model import TEXT2IMAGE_KIND, TEXT_KINDS, TEXTCYCLE_KIND, _check_prompts
from translate.text.tokenizer import ByteTokenizer, normalize_text

__all__ = ["OnnxTextModel"]


class OnnxTextModel:
    """A file written by `export_text_onnx` on ONNX Runtime, with the PyTorch classes' methods:
    `generate` (text2image, as Text2ImageModel.generate) and `translate` (textcycle, as
    TextTranslationModel.translate). Texts are tokenised with ByteTokenizer(the file's max_length).

    Args:
        providers: ONNX Runtime providers, best first (default: the CPU).
        threads: intra-op threads (default: as many as PyTorch uses).

    Raises:
        ValueError: the file is not an exported text model.
        FileNotFoundError: the encoder file (text input "embedding") is not beside it.
    """

    def __init__(self, path: str | Path, *, providers: Sequence[ProviderEntry] | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.metadata = read_onnx_metadata(self.path)
        self.kind = self.metadata.get("kind")
        if self.kind not in TEXT_KINDS:
            raise ValueError(f"{str(self.path)!r} is not an exported text model (metadata kind {self.kind!r}, "
                             f"expected one of {', '.join(TEXT_KINDS)})")
        self.text_input = str(self.metadata["text_input"])
        self.baked_prompts: list[str] = list(self.metadata.get("baked_prompts") or [])
        self.domains: dict[str, list[str]] = dict(self.metadata.get("domains") or {})
        self.max_length = int(self.metadata.get("max_length") or 0)
        self.uint8_io = self.metadata.get("io") == "uint8"
        self.size_multiple = int(self.metadata.get("size_multiple", 1))
        providers, threads = list(providers or [CPU_PROVIDER]), threads or torch_threads()
        self.session = ort_session(self.path, providers=providers, threads=threads)
        self.provider = self.session.get_providers()[0]
        self.encoder_session = None
        if self.metadata.get("text_encoder_file"):
            encoder_path = self.path.with_name(str(self.metadata["text_encoder_file"]))
            if not encoder_path.is_file():
                raise FileNotFoundError(f"{self.path.name} takes embeddings from its encoder file "
                                        f"{encoder_path.name}, which is not beside it ({str(encoder_path)!r})")
            self.encoder_session = ort_session(encoder_path, providers=providers, threads=threads)

    def prompt_index(self, prompt: str) -> int:
        """The baked row of `prompt` (compared lowercased, whitespace collapsed)."""
        keys = [normalize_text(p) for p in self.baked_prompts]
        if normalize_text(prompt) not in keys:
            raise ValueError(f"prompt {prompt!r} is not baked into {self.path.name}; its prompts are "
                             f"{', '.join(map(repr, self.baked_prompts))} (export again to bake others)")
        return keys.index(normalize_text(prompt))

    def _ids(self, prompts: list[str]) -> dict[str, np.ndarray]:
        ids, mask = ByteTokenizer(self.max_length).encode(prompts)
        return {"ids": ids.numpy(), "mask": mask.numpy()}

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """`(B, D)` float32 embeddings from the encoder file (text input "embedding", byte encoder)."""
        if self.encoder_session is None:
            raise ValueError(f"{self.path.name} takes embeddings of the text encoder "
                             f"{self.metadata.get('text_encoder')}, which is not in ONNX: compute them with that "
                             "model (translate.text.build_text_encoder(...).encode), or export with bake_prompts")
        return self.encoder_session.run(["embedding"], self._check(self._ids(_prompts(prompts))))[0]

    def text_feed(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """The file's text inputs for B prompts: ids and mask, embedding, or prompt_index."""
        prompts = _prompts(prompts)
        if self.text_input == "baked":
            return {"prompt_index": np.array([self.prompt_index(p) for p in prompts], dtype=np.int64)}
        return self._ids(prompts) if self.text_input == "ids" else {"embedding": self.embed(prompts)}

    def _check(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, mask = feed.get("ids"), feed.get("mask")
        if ids is None:
            return feed
        if ids.ndim != 2 or mask is None or mask.shape != ids.shape:
            raise ValueError(f"expected ids and mask of the same shape (B, L), got {ids.shape} and "
                             f"{None if mask is None else mask.shape}")
        if not 2 <= ids.shape[1] <= self.max_length:
            raise ValueError(f"ids are {ids.shape[1]} tokens long; {self.path.name} takes 2 to max_length "
                             f"{self.max_length}: tokenize with ByteTokenizer({self.max_length}), which cuts "
                             "longer texts")
        return {**feed, "ids": ids.astype(np.int64), "mask": mask.astype(bool)}

    def run(self, x: Tensor, text: dict[str, np.ndarray]) -> Tensor:
        """`x`: noise `(B, noise_dim)` or images `(B, C, H, W)` in [-1, 1]; `text`: B rows as from
        `text_feed`. Returns `(B, C_out, H, W)` float32 in [-1, 1] on the CPU."""
        x = x.detach().float().cpu()
        first = tensor_to_array(x) if self.uint8_io else x.contiguous().numpy()
        text = self._check(text)
        if any(len(value) != len(x) for value in text.values()):
            raise ValueError(f"got {len(x)} rows of noise / images and "
                             f"{', '.join(f'{len(v)} of {k}' for k, v in text.items())}; pass one text row per row")
        out = self.session.run([OUTPUT_NAME], {"noise" if self.kind == TEXT2IMAGE_KIND else "image": first, **text})[0]
        return array_to_tensor(out) if self.uint8_io else torch.from_numpy(out)

    def generate(self, prompts: Sequence[str], n: int = 1, seed: int | None = None) -> Tensor:
        """`n` images per prompt: `(len(prompts) * n, C, S, S)` in [-1, 1], prompt-major; the noise is
        Text2ImageModel.generate's for the same seed."""
        if self.kind != TEXT2IMAGE_KIND:
            raise ValueError(f"{self.path.name} is a {self.kind} model: it translates images (translate, convert)")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        texts = [p for p in _prompts(prompts) for _ in range(n)]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.run(torch.randn(len(texts), int(self.metadata["noise_dim"]), generator=generator),
                        self.text_feed(texts))

    def translate(self, images: Tensor, prompt: str | Sequence[str]) -> Tensor:
        """`images` `(B, C, H, W)` in [-1, 1], H and W multiples of size_multiple, translated to what
        `prompt` names (one for all, or B) -> `(B, C_out, H, W)` in [-1, 1]."""
        if self.kind != TEXTCYCLE_KIND:
            raise ValueError(f"{self.path.name} is a {self.kind} model: it generates images (generate)")
        if images.ndim != 4 or images.shape[-1] % self.size_multiple or images.shape[-2] % self.size_multiple:
            raise ValueError(f"expected images (B, C, H, W) with H and W multiples of {self.size_multiple}, got "
                             f"{tuple(images.shape)}; pad them (translate.deploy.inference.pad_to_multiple)")
        return self.run(images, self.text_feed([prompt] * len(images) if isinstance(prompt, str) else list(prompt)))


def _prompts(prompts: Sequence[str]) -> list[str]:
    _check_prompts(prompts)  # the PyTorch classes' rule
    return list(prompts)
