"""RMSE of a textcycle model on paired domain folders, both ways, beside two baselines.

The data is what `translate data make-text-domains` writes: DATA/<phase>/<A>/ and DATA/<phase>/<B>/
hold the two sides of each pair under the same file name. On the first N pairs (sorted by name),
each resized to size x size, A is translated with the prompt naming B (default: B's first
phrasing in the model, "map" for maps) and B with the prompt naming A. Reported per direction:
RMSE on 0..255 (output rounded to 8 bits, as a saved image) and on [-1, 1] (float output), over
all pixels of the N images. Two baselines: "identity", the input itself taken as the output, and
"mean_colour", every pixel the targets' average colour (a cheat that sees them; an untrained
generator's flat grey output already beats the identity on maps). A model that has learned the
translation is below both.

    report = score_textcycle("runs/maps_textcycle", "data/maps_domains", n=50, size=256)
    report["directions"]["aerial->map"]["rmse_255"]
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import save_image

from translate.core.errors import InvalidValueError
from translate.core.images import from_uint8, to_uint8
from translate.data import list_images, load_image, to_uint8_tensor
from translate.data.captions import read_domain_prompts
from translate.models import text_size_multiple
from translate.text.model import TextTranslationModel, load_text_model

__all__ = ["markdown_row", "paired_files", "score_textcycle"]


def paired_files(folder_a: Path, folder_b: Path) -> list[tuple[Path, Path]]:
    """(A, B) files with the same name without extension, sorted by it."""
    def by_name(folder: Path) -> dict[str, Path]:
        return {path.relative_to(folder).with_suffix("").as_posix(): path for path in list_images(folder)}

    a, b = by_name(folder_a), by_name(folder_b)
    names = sorted(a.keys() & b.keys(), key=lambda name: name.split("/"))
    if not names:
        raise FileNotFoundError(f"no file name is in both {folder_a} and {folder_b}; scoring a textcycle model "
                                "needs paired domains, as `translate data make-text-domains` writes them")
    return [(a[name], b[name]) for name in names]


def _load_square(path: Path, size: int) -> Tensor:
    """`(3, size, size)` uint8, resized with bicubic when needed."""
    image = load_image(path, 3)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return to_uint8_tensor(image)


class _Rmse:
    """Running sums of squared errors on 0..255 (8-bit output) and on [-1, 1]."""

    def __init__(self) -> None:
        self.sq_255 = self.sq_unit = 0.0
        self.count = 0

    def add(self, output: Tensor, truth_uint8: Tensor) -> None:
        """`output` `(B, C, H, W)` in [-1, 1]; `truth_uint8` the same shape in 0..255."""
        output_255 = to_uint8(output).float()
        self.sq_255 += float(((output_255 - truth_uint8.float()) ** 2).sum())
        self.sq_unit += float(((output.float() - from_uint8(truth_uint8)) ** 2).sum())
        self.count += truth_uint8.numel()

    def result(self) -> dict[str, float]:
        return {"rmse_255": math.sqrt(self.sq_255 / self.count), "rmse_unit": math.sqrt(self.sq_unit / self.count)}


def _prompts(model: TextTranslationModel, folder: Path, names: tuple[str, str], prompt_a: str | None,
             prompt_b: str | None) -> dict[str, str]:
    """{"a": the prompt naming A, "b": the prompt naming B}: as given, else the first phrasing of
    the model's domain, else of the folder's prompts.txt."""
    file_prompts = read_domain_prompts(folder)

    def first_prompt(name: str) -> str:
        prompts = model.domains.get(name) or file_prompts.get(name)
        if not prompts:
            raise InvalidValueError("names", names, f"domains of the model ({', '.join(model.domains)}) or "
                                    f"folders of {folder}", "or give both prompts")
        return prompts[0]

    return {"a": prompt_a or first_prompt(names[0]), "b": prompt_b or first_prompt(names[1])}


def score_textcycle(model_path: str | os.PathLike[str], data: str | os.PathLike[str], *, n: int | None = 50,
                    size: int = 256, phase: str = "val", names: tuple[str, str] = ("aerial", "map"),
                    prompt_a: str | None = None, prompt_b: str | None = None, grid: str | os.PathLike[str] | None = None,
                    grid_rows: int = 4, batch_size: int = 8, device: str = "cpu") -> dict[str, Any]:
    """The evaluation (see the module doc) as a dict; writes the sample grid when `grid` is given:
    one row per pair, A | fake B | real B | B | fake A | real A.

    Args:
        n: the first N pairs (None: all). size: the side images are resized to (a multiple of the
            generator's stride). names: the A and B domain folders under DATA/PHASE.
    """
    for parameter, value in (("n", n if n is not None else 1), ("size", size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidValueError(parameter, value, "a positive integer")
    model = load_text_model(model_path, device=device, kind="textcycle")
    assert isinstance(model, TextTranslationModel)  # kind checked by load_text_model; narrows the type
    architecture = model.config["architecture"]
    multiple = text_size_multiple(architecture)
    if size % multiple:
        raise InvalidValueError("size", size, f"a multiple of {multiple} for this {architecture['name']} generator")
    folder = Path(data) / phase
    prompts = _prompts(model, folder, names, prompt_a, prompt_b)
    pairs = paired_files(folder / names[0], folder / names[1])[:n]
    directions = {f"{names[0]}->{names[1]}": ("a", "b"), f"{names[1]}->{names[0]}": ("b", "a")}
    scores = {key: {"model": _Rmse(), "identity": _Rmse()} for key in directions}
    rows: list[Tensor] = []
    seen: dict[str, list[Tensor]] = {"a": [], "b": []}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        images = {"a": torch.stack([_load_square(a, size) for a, _ in chunk]),
                  "b": torch.stack([_load_square(b, size) for _, b in chunk])}
        for side in seen:
            seen[side].append(images[side])
        fakes = {}
        for key, (source, target) in directions.items():
            fakes[key] = model.translate(from_uint8(images[source]), prompts[target]).cpu()
            scores[key]["model"].add(fakes[key], images[target])
            scores[key]["identity"].add(from_uint8(images[source]), images[target])
        for i in range(min(len(chunk), max(0, grid_rows - len(rows) // 6))):
            for key, (source, target) in directions.items():
                rows += [from_uint8(images[source][i]), fakes[key][i], from_uint8(images[target][i])]
    report = {"model": str(model_path), "data": str(data), "phase": phase, "pairs": len(pairs), "size": size,
              "directions": {key: {"prompt": prompts[target], **scores[key]["model"].result(),
                                   "identity": scores[key]["identity"].result(),
                                   "mean_colour": _mean_colour_rmse(torch.cat(seen[target]))}
                             for key, (_, target) in directions.items()}}
    if grid is not None:
        Path(grid).parent.mkdir(parents=True, exist_ok=True)
        save_image(torch.stack(rows), str(grid), nrow=6, normalize=True, value_range=(-1, 1), padding=2)
        report["grid"] = str(grid)
    return report


def _mean_colour_rmse(targets: Tensor) -> dict[str, float]:
    """The RMSE of the image whose every pixel is the targets' mean colour (a cheat that sees them)."""
    colour = targets.float().mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1) in 0..255
    rmse = _Rmse()
    rmse.add(from_uint8(colour).expand_as(targets), targets)
    return rmse.result()


def markdown_row(report: dict[str, Any]) -> str:
    """`| model | pairs | size | A->B RMSE (identity, mean colour) | B->A RMSE (...) |` on 0..255."""
    cells = [f"{d['rmse_255']:.1f} ({d['identity']['rmse_255']:.1f}, {d['mean_colour']['rmse_255']:.1f})"
             for d in report["directions"].values()]
    return f"| {report['model']} | {report['pairs']} | {report['size']} | " + " | ".join(cells) + " |"
