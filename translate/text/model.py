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

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from translate.core.errors import check_choice
from translate.core.files import atomic_write, atomic_write_text
from translate.core.version import __version__
from translate.formats.locator import locate
from translate.models import build_text_generator
from translate.text.encoders import build_text_encoder

KIND = "text2image"
TEXTCYCLE_KIND = "textcycle"
TEXT_KINDS = (KIND, TEXTCYCLE_KIND)
TOKENIZER = "byte-v1"
_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


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
    """Write a text model weights folder of `kind` ("text2image" | "textcycle"), atomically (each
    file written under a temporary name, then renamed). `architecture` = {"name": ..., **its
    constructor's arguments}; `domains` (textcycle) = {domain name: its prompts}; `dtype`: how
    floating-point tensors are stored (float16 halves the file; loading casts back to float32)."""
    if kind not in TEXT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TEXT_KINDS)}, got {kind!r}")
    if kind == TEXTCYCLE_KIND and not domains:
        raise ValueError("a textcycle model needs its domains ({name: prompts}), got none")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype!r}")

    def stored(value: Tensor) -> Tensor:
        value = value.detach().cpu()
        return (value.to(dtype) if value.is_floating_point() else value).contiguous()

    tensors = {f"generator.{k}": stored(v) for k, v in generator.state_dict().items()}
    if getattr(text_encoder, "trainable", True):
        tensors.update({f"text_encoder.{k}": stored(v) for k, v in text_encoder.state_dict().items()})
    config = {"format": "translate.weights", "format_version": 1, "toolkit_version": __version__,
              "kind": kind, "task": kind, "architecture": architecture, "text_encoder": text_encoder_config,
              "tokenizer": TOKENIZER, "normalization": {"range": [-1.0, 1.0]},
              "dtype": _DTYPES[dtype], **({"domains": domains} if domains else {}), "source": source or {}}
    # Weights first: a folder whose config.json exists is complete.
    atomic_write(out_dir / "model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2) + "\n")
    return out_dir


def save_text2image(generator: nn.Module, text_encoder: nn.Module, out_dir: str | Path, *,
                    architecture: dict[str, Any], text_encoder_config: dict[str, Any],
                    source: dict[str, Any] | None = None) -> Path:
    """`save_text_model(kind="text2image")`."""
    return save_text_model(generator, text_encoder, out_dir, kind=KIND, architecture=architecture,
                           text_encoder_config=text_encoder_config, source=source)


def find_text_model(path: str | Path) -> Path | None:
    """The text model weights folder at `path` (a folder, a run directory, or a bundled or
    installed name), or None when `path` is no text model (see `translate.formats.locator`)."""
    try:
        source = locate(path)
    except (FileNotFoundError, ValueError):
        return None
    return source.folder if source.is_text and not source.is_onnx else None


def load_text_model(path: str | Path, device: str | torch.device = "cpu",
                    kind: str | None = None) -> Text2ImageModel | TextTranslationModel:
    """Rebuild a text model from its weights folder (or a run directory holding one).

    Raises:
        FileNotFoundError: no text model folder at `path`.
        ValueError: the folder holds another kind than `kind` (when given).
    """
    check_choice("kind", kind, (*TEXT_KINDS, None))
    folder = find_text_model(path)
    if folder is None:
        raise FileNotFoundError(f"no text model weights folder at {str(path)!r} (expected config.json of kind "
                                f"text2image or textcycle and model.safetensors, as `translate train text2image` "
                                "/ `textcycle` write under RUN/weights/<task>)")
    config = json.loads((folder / "config.json").read_text())
    if kind is not None and config["kind"] != kind:
        raise ValueError(f"{str(path)!r} holds a {config['kind']!r} model, not a {kind!r} model")
    generator = build_text_generator(config["architecture"])
    encoder_settings = dict(config["text_encoder"])
    encoder = build_text_encoder(encoder_settings.pop("name"), **encoder_settings)
    tensors = load_file(str(folder / "model.safetensors"))
    generator.load_state_dict({k[len("generator."):]: v.float() for k, v in tensors.items()
                               if k.startswith("generator.")})
    encoder_tensors = {k[len("text_encoder."):]: v.float() for k, v in tensors.items()
                       if k.startswith("text_encoder.")}
    if encoder_tensors:
        encoder.load_state_dict(encoder_tensors)
    model_class = Text2ImageModel if config["kind"] == KIND else TextTranslationModel
    return model_class(generator.to(device).eval(), encoder.to(device).eval(), config)


def load_text2image(path: str | Path, device: str | torch.device = "cpu") -> Text2ImageModel:
    """`load_text_model(kind="text2image")`."""
    model = load_text_model(path, device, kind=KIND)
    assert isinstance(model, Text2ImageModel)  # kind checked above; narrows the type
    return model
