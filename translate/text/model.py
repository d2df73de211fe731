"""Text-to-image models as weights folders: the generator and its text encoder, together.

A folder holds `config.json` (kind "text2image": the generator's architecture, the text
encoder's name and settings, the tokenizer, normalisation) and `model.safetensors` with the
generator's tensors under `generator.` and a trainable encoder's under `text_encoder.` (a frozen
pretrained encoder is named in the config and loaded from its own package instead).

    model = load_text2image("runs/shapes/weights/text2image")
    images = model.generate(["a large red circle on the left"], n=4, seed=0)   # (4, 3, S, S) in [-1, 1]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from translate import __version__

KIND = "text2image"
TOKENIZER = "byte-v1"


class Text2ImageModel(nn.Module):
    """A text encoder and a noise + text -> image generator."""

    def __init__(self, generator: nn.Module, text_encoder: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.generator, self.text_encoder, self.config = generator, text_encoder, config

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int = 1, seed: int | None = None) -> Tensor:
        """`n` images per prompt: `(len(prompts) * n, C, S, S)` in [-1, 1], prompt-major order."""
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ValueError(f"prompts must be non-empty strings, got {prompts!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        device = next(self.generator.parameters()).device
        texts = [p for p in prompts for _ in range(n)]
        cond = self.text_encoder.encode(texts).to(device)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        noise = torch.randn(len(texts), self.generator.noise_dim, generator=generator).to(device)
        return self.generator(noise, cond)


def save_text2image(generator: nn.Module, text_encoder: nn.Module, out_dir: str | Path, *,
                    architecture: dict[str, Any], text_encoder_config: dict[str, Any],
                    source: dict[str, Any] | None = None) -> Path:
    """Write a text2image weights folder (atomically: a temporary folder, then a rename of each file)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"generator.{k}": v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    if getattr(text_encoder, "trainable", True):
        tensors.update({f"text_encoder.{k}": v.detach().cpu().contiguous()
                        for k, v in text_encoder.state_dict().items()})
    config = {"format": "translate.weights", "format_version": 1, "toolkit_version": __version__,
              "kind": KIND, "task": KIND, "architecture": architecture, "text_encoder": text_encoder_config,
              "tokenizer": TOKENIZER, "normalization": {"range": [-1.0, 1.0]}, "source": source or {}}
    for name, write in (("model.safetensors", lambda p: save_file(tensors, str(p))),
                        ("config.json", lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))):
        partial = out_dir / f".{name}.partial"
        write(partial)
        os.replace(partial, out_dir / name)
    return out_dir


def load_text2image(path: str | Path, device: str | torch.device = "cpu") -> Text2ImageModel:
    """Rebuild a text2image model from its weights folder (or a run directory holding one)."""
    from translate.models.conditioned import TextToImageGenerator
    from translate.text import build_text_encoder

    path = Path(path)
    if (path / "weights" / KIND / "config.json").is_file():
        path = path / "weights" / KIND
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no text2image weights folder at {str(path)!r} (expected config.json and "
                                "model.safetensors, as `translate train text2image` writes under RUN/weights/text2image)")
    config = json.loads((path / "config.json").read_text())
    if config.get("kind") != KIND:
        raise ValueError(f"{str(path)!r} holds a {config.get('kind')!r} model, not a text2image model")
    architecture = {k: v for k, v in config["architecture"].items() if k != "name"}
    generator = TextToImageGenerator(**architecture)
    encoder_settings = dict(config["text_encoder"])
    encoder = build_text_encoder(encoder_settings.pop("name"), **encoder_settings)
    tensors = load_file(str(path / "model.safetensors"))
    generator.load_state_dict({k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")})
    encoder_tensors = {k[len("text_encoder."):]: v for k, v in tensors.items() if k.startswith("text_encoder.")}
    if encoder_tensors:
        encoder.load_state_dict(encoder_tensors)
    return Text2ImageModel(generator.to(device).eval(), encoder.to(device).eval(), config)
