"""Text-conditioned models as weights folders: the generator and its text encoder, together.

Two kinds, one layout. A folder holds `config.json` (the kind, the generator's architecture, the
text encoder's name and settings, the tokenizer, normalisation; a textcycle model also its
domains and their prompts) and `model.safetensors` with the generator's tensors under
`generator.` and a trainable encoder's under `text_encoder.` (a frozen pretrained encoder is
named in the config and loaded from its own package instead).

- kind "text2image": noise + caption -> image (`TextToImageGenerator`), `Text2ImageModel.generate`.
- kind "textcycle": image + prompt -> image (`TextResnetGenerator` / `TextUnetGenerator`),
  `TextTranslationModel.translate`.

    model = load_text_model("weights/shapes_text2image")
    images = model.generate(["a large red circle on the left"], n=4, seed=0)   # (4, 3, S, S) in [-1, 1]
    model = load_text_model("runs/maps_textcycle")
    fake_map = model.translate(aerial, "map")                                 # (B, 3, H, W) in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from translate.core.errors import check_choice
from translate.formats.folder import WEIGHTS_FILE, read_weights_folder, write_weights_folder
from translate.formats.locator import ModelSource, as_source
from translate.formats.weights import load_state_dict_strict
from translate.models import build_text_generator
from translate.text.encoders import build_text_encoder

TEXT2IMAGE_KIND = "text2image"
TEXTCYCLE_KIND = "textcycle"
TEXT_KINDS = (TEXT2IMAGE_KIND, TEXTCYCLE_KIND)
TOKENIZER = "byte-v1"


def _check_prompts(prompts: list[str]) -> None:
    if isinstance(prompts, str) or not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of non-empty strings, got {prompts!r}")


class Text2ImageModel(nn.Module):
    """A text encoder and a noise + text -> image generator."""

    def __init__(self, generator: nn.Module, text_encoder: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.generator, self.text_encoder, self.config = generator, text_encoder, config

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int = 1, seed: int | None = None) -> Tensor:
        """`n` images per prompt: `(len(prompts) * n, C, S, S)` in [-1, 1], prompt-major order."""
        _check_prompts(prompts)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        device = next(self.generator.parameters()).device
        texts = [p for p in prompts for _ in range(n)]
        cond = self.text_encoder.encode(texts).to(device)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        noise = torch.randn(len(texts), self.generator.noise_dim, generator=generator).to(device)
        return self.generator(noise, cond)


class TextTranslationModel(nn.Module):
    """A text encoder and an image + text -> image generator (the textcycle task).

    `domains` maps each training domain's name (its folder) to its prompts; any text can be given
    as a prompt, these are the ones it was trained on.
    """

    def __init__(self, generator: nn.Module, text_encoder: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.generator, self.text_encoder, self.config = generator, text_encoder, config
        self.domains: dict[str, list[str]] = dict(config.get("domains", {}))

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> Tensor:
        """`prompts` (B strings) -> `(B, D)` embeddings on the generator's device."""
        _check_prompts(prompts)
        device = next(self.generator.parameters()).device
        return self.text_encoder.encode(prompts).to(device)

    @torch.no_grad()
    def translate(self, images: Tensor, prompt: str | list[str]) -> Tensor:
        """`images` `(B, C, H, W)` in [-1, 1] (H, W multiples of the generator's stride), translated
        to what `prompt` names (one prompt for all, or B prompts) -> `(B, C, H, W)` in [-1, 1]."""
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        prompts = [prompt] * images.shape[0] if isinstance(prompt, str) else list(prompt)
        if len(prompts) != images.shape[0]:
            raise ValueError(f"got {len(prompts)} prompts for {images.shape[0]} images; pass one prompt "
                             "or one per image")
        cond = self.embed(prompts)
        device = next(self.generator.parameters()).device
        return self.generator(images.to(device), cond)


def save_text_model(generator: nn.Module, text_encoder: nn.Module, out_dir: str | Path, *, kind: str,
                    architecture: dict[str, Any], text_encoder_config: dict[str, Any],
                    domains: dict[str, list[str]] | None = None, source: dict[str, Any] | None = None,
                    dtype: torch.dtype = torch.float32) -> Path:
    """Write a text model weights folder of `kind` ("text2image" | "textcycle") with
    `translate.formats.folder.write_weights_folder` (atomic, weights first). `architecture` =
    {"name": ..., **its constructor's arguments}; `domains` (textcycle) = {domain name: its
    prompts}; `dtype`: how floating-point tensors are stored (float16 halves the file; loading
    casts back to float32)."""
    check_choice("kind", kind, TEXT_KINDS)
    if kind == TEXTCYCLE_KIND and not domains:
        raise ValueError("a textcycle model needs its domains ({name: prompts}), got none")
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    # A frozen pretrained encoder is named in the config and loaded from its own package.
    if getattr(text_encoder, "trainable", True):
        tensors.update({f"text_encoder.{k}": v for k, v in text_encoder.state_dict().items()})
    # "dtype" keeps its place among the keys; write_weights_folder sets its value.
    config = {"kind": kind, "task": kind, "architecture": architecture, "text_encoder": text_encoder_config,
              "tokenizer": TOKENIZER, "normalization": {"range": [-1.0, 1.0]}, "dtype": None,
              **({"domains": domains} if domains else {}), "source": source or {}}
    return write_weights_folder(out_dir, tensors, config, dtype)


def save_text2image(generator: nn.Module, text_encoder: nn.Module, out_dir: str | Path, *,
                    architecture: dict[str, Any], text_encoder_config: dict[str, Any],
                    source: dict[str, Any] | None = None) -> Path:
    """`save_text_model(kind="text2image")`."""
    return save_text_model(generator, text_encoder, out_dir, kind=TEXT2IMAGE_KIND, architecture=architecture,
                           text_encoder_config=text_encoder_config, source=source)


def find_text_model(path: str | Path | ModelSource) -> Path | None:
    """The text model weights folder at `path` (a folder, a run directory, a bundled or installed
    name, or what `translate.formats.locator.locate` found), or None when `path` is no text model."""
    try:
        source = as_source(path)
    except (FileNotFoundError, ValueError):
        return None
    return source.folder if source.is_text and not source.is_onnx else None


def load_text_model(path: str | Path | ModelSource, device: str | torch.device = "cpu",
                    kind: str | None = None) -> Text2ImageModel | TextTranslationModel:
    """Rebuild a text model from its weights folder (or a run directory holding one), ready for
    inference: eval mode, gradients off.

    Raises:
        FileNotFoundError: no text model folder at `path`.
        UnsupportedFormatVersionError: a newer release wrote the folder.
        ValueError: the folder holds another kind than `kind` (when given), or is damaged.
    """
    check_choice("kind", kind, (*TEXT_KINDS, None))
    folder = find_text_model(path)
    where = path.requested if isinstance(path, ModelSource) else str(path)
    if folder is None:
        raise FileNotFoundError(f"no text model weights folder at {where!r} (expected config.json of kind "
                                f"text2image or textcycle and model.safetensors, as `translate train text2image` "
                                "/ `textcycle` write under RUN/weights/<task>)")
    config, tensors = read_weights_folder(folder)
    if kind is not None and config["kind"] != kind:
        raise ValueError(f"{where!r} holds a {config['kind']!r} model, not a {kind!r} model")
    generator = build_text_generator(config["architecture"])
    encoder_settings = dict(config["text_encoder"])
    encoder = build_text_encoder(encoder_settings.pop("name"), **encoder_settings)
    what = str(folder / WEIGHTS_FILE)
    load_state_dict_strict(generator, _with_prefix(tensors, "generator."), what=what)
    encoder_tensors = _with_prefix(tensors, "text_encoder.")
    if encoder_tensors:
        load_state_dict_strict(encoder, encoder_tensors, what=what)
    model_class = Text2ImageModel if config["kind"] == TEXT2IMAGE_KIND else TextTranslationModel
    model = model_class(generator, encoder, config)
    return model.to(device).eval().requires_grad_(False)


def _with_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose names start with `prefix`, named without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_text2image(path: str | Path | ModelSource, device: str | torch.device = "cpu") -> Text2ImageModel:
    """`load_text_model(kind="text2image")`."""
    model = load_text_model(path, device, kind=TEXT2IMAGE_KIND)
    assert isinstance(model, Text2ImageModel)  # kind checked above; narrows the type
    return model
