"""RMSE of a textcycle model on paired validation domains, both ways, beside the identity baseline.

Usage:
    python scripts/eval_textcycle.py --model runs/maps_textcycle --data data/maps_domains --n 50 --size 256 \
        [--phase val] [--names aerial,map] [--prompt-a "aerial photo"] [--prompt-b "map"] \
        [--json out.json] [--grid docs/images/maps_textcycle_val.png] [--grid-rows 4]

--data is what scripts/make_text_domains.py writes: DATA/<phase>/<A>/ and DATA/<phase>/<B>/ hold the
two sides of each pair under the same file name. On the first N pairs (sorted by name), each resized
to --size x --size, A is translated with the prompt naming B (default: B's first phrasing in the
model, "map" for maps) and B with the prompt naming A ("aerial photo"). Reported per direction:
RMSE on 0..255 (output rounded to 8 bits, as a saved image) and on [-1, 1] (float output), over
all pixels of the N images. Two baselines: "identity", the input itself taken as the output, and
"mean_colour", every pixel the targets' average colour (a cheat that sees them; an untrained
generator's flat grey output already beats the identity on maps). A model that has learned the
translation is below both. Prints a JSON object and a markdown table row.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import save_image

from translate.core.images import from_uint8, to_uint8
from translate.data import list_images, load_image, to_uint8_tensor
from translate.data.captions import read_domain_prompts
from translate.deploy.text_export import text_size_multiple
from translate.text.model import load_text_model


def paired_files(folder_a: Path, folder_b: Path) -> list[tuple[Path, Path]]:
    """(A, B) files with the same name without extension, sorted by it."""
    def by_name(folder: Path) -> dict[str, Path]:
        return {path.relative_to(folder).with_suffix("").as_posix(): path for path in list_images(folder)}

    a, b = by_name(folder_a), by_name(folder_b)
    names = sorted(a.keys() & b.keys(), key=lambda name: name.split("/"))
    if not names:
        raise FileNotFoundError(f"no file name is in both {folder_a} and {folder_b}; the evaluation needs "
                                "paired domains, as scripts/make_text_domains.py writes them")
    return [(a[name], b[name]) for name in names]


def load_square(path: Path, size: int) -> torch.Tensor:
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

    def add(self, output: torch.Tensor, truth_uint8: torch.Tensor) -> None:
        """`output` `(B, C, H, W)` in [-1, 1]; `truth_uint8` the same shape in 0..255."""
        output_255 = to_uint8(output).float()
        self.sq_255 += float(((output_255 - truth_uint8.float()) ** 2).sum())
        self.sq_unit += float(((output.float() - from_uint8(truth_uint8)) ** 2).sum())
        self.count += truth_uint8.numel()

    def result(self) -> dict[str, float]:
        return {"rmse_255": math.sqrt(self.sq_255 / self.count), "rmse_unit": math.sqrt(self.sq_unit / self.count)}


def evaluate(model_path: str | Path, data: str | Path, n: int = 50, size: int = 256, phase: str = "val",
             names: tuple[str, str] = ("aerial", "map"), prompt_a: str | None = None, prompt_b: str | None = None,
             grid: str | Path | None = None, grid_rows: int = 4, batch_size: int = 8,
             device: str = "cpu") -> dict:
    """The evaluation (see the module doc) as a dict; writes the sample grid when `grid` is given."""
    if n < 1 or size < 1 or batch_size < 1:
        raise ValueError(f"--n, --size and the batch size must be positive, got {n}, {size}, {batch_size}")
    model = load_text_model(model_path, device=device, kind="textcycle")
    architecture = model.config["architecture"]
    multiple = text_size_multiple(architecture)
    if size % multiple:
        raise ValueError(f"--size {size} must be a multiple of {multiple} for this {architecture['name']} generator")
    folder = Path(data) / phase
    name_a, name_b = names
    file_prompts = read_domain_prompts(folder)

    def first_prompt(name: str) -> str:
        prompts = model.domains.get(name) or file_prompts.get(name)
        if not prompts:
            raise ValueError(f"domain {name!r} is neither among the model's domains ({', '.join(model.domains)}) "
                             f"nor a folder of {folder}; pass --names or the prompts")
        return prompts[0]

    prompts = {"a": prompt_a or first_prompt(name_a), "b": prompt_b or first_prompt(name_b)}
    pairs = paired_files(folder / name_a, folder / name_b)[:n]
    directions = {f"{name_a}->{name_b}": ("a", "b"), f"{name_b}->{name_a}": ("b", "a")}
    model_rmse = {key: _Rmse() for key in directions}
    identity_rmse = {key: _Rmse() for key in directions}
    rows: list[torch.Tensor] = []
    seen: dict[str, list[torch.Tensor]] = {"a": [], "b": []}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        images = {"a": torch.stack([load_square(a, size) for a, _ in chunk]),
                  "b": torch.stack([load_square(b, size) for _, b in chunk])}
        seen["a"].append(images["a"])
        seen["b"].append(images["b"])
        fakes = {}
        for key, (source, target) in directions.items():
            fake = model.translate(from_uint8(images[source]), prompts[target]).cpu()
            model_rmse[key].add(fake, images[target])
            identity_rmse[key].add(from_uint8(images[source]), images[target])
            fakes[key] = fake
        for i in range(len(chunk)):
            if len(rows) < 6 * grid_rows:
                for key, (source, target) in directions.items():
                    rows += [from_uint8(images[source][i]), fakes[key][i], from_uint8(images[target][i])]
    mean_colour_rmse = {}
    for key, (_, target) in directions.items():
        targets = torch.cat(seen[target])
        colour = targets.float().mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1) in 0..255
        mean_colour_rmse[key] = _Rmse()
        mean_colour_rmse[key].add(from_uint8(colour).expand_as(targets), targets)
    result = {"model": str(model_path), "data": str(data), "phase": phase, "pairs": len(pairs), "size": size,
              "directions": {key: {"prompt": prompts[target], **model_rmse[key].result(),
                                   "identity": identity_rmse[key].result(),
                                   "mean_colour": mean_colour_rmse[key].result()}
                             for key, (_, target) in directions.items()}}
    if grid is not None:
        Path(grid).parent.mkdir(parents=True, exist_ok=True)
        # One row per pair: A | fake B | real B | B | fake A | real A.
        save_image(torch.stack(rows), str(grid), nrow=6, normalize=True, value_range=(-1, 1), padding=2)
        result["grid"] = str(grid)
    return result


def markdown_row(result: dict) -> str:
    """`| model | pairs | size | A->B RMSE (identity, mean colour) | B->A RMSE (...) |` on 0..255."""
    cells = [f"{d['rmse_255']:.1f} ({d['identity']['rmse_255']:.1f}, {d['mean_colour']['rmse_255']:.1f})"
             for d in result["directions"].values()]
    return f"| {result['model']} | {result['pairs']} | {result['size']} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="textcycle run directory or weights folder")
    parser.add_argument("--data", required=True, help="domain folders from scripts/make_text_domains.py")
    parser.add_argument("--n", type=int, default=50, help="first N pairs (sorted by name)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--phase", default="val")
    parser.add_argument("--names", default="aerial,map", help="the A and B domain folders")
    parser.add_argument("--prompt-a", help="prompt naming A, used on B (default: A's first phrasing)")
    parser.add_argument("--prompt-b", help="prompt naming B, used on A (default: B's first phrasing)")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--grid", help="PNG of A | fake B | B | B | fake A | A rows of the first --grid-rows pairs")
    parser.add_argument("--grid-rows", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    names = tuple(part.strip() for part in args.names.split(","))
    if len(names) != 2:
        parser.error(f"--names {args.names!r} must be two folder names separated by a comma, e.g. aerial,map")
    try:
        result = evaluate(args.model, args.data, n=args.n, size=args.size, phase=args.phase, names=names,
                          prompt_a=args.prompt_a, prompt_b=args.prompt_b, grid=args.grid,
                          grid_rows=args.grid_rows, device=args.device)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(json.dumps(result, indent=2))
    keys = list(result["directions"])
    print(f"| model | pairs | size | {keys[0]} RMSE 0..255 (identity, mean colour) | {keys[1]} RMSE 0..255 "
          "(identity, mean colour) |")
    print(markdown_row(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
