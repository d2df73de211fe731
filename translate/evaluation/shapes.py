"""The procedural shapes data set and its conditioning metric.

One shape (circle, square or triangle) on a black background, in one of eight named colors, small
or large, at one of five positions; captions in several phrasings. Because every attribute can be
measured back from the pixels (:func:`measure_shape`), a text-conditioned generator can be scored
without outside data or a learned classifier (:func:`conditioning_accuracy`).

Geometry, in fractions of the image side ``S`` (x to the right, y down):

- positions (the shape's centroid): left (0.25, 0.5), right (0.75, 0.5), top (0.5, 0.25),
  bottom (0.5, 0.75), center (0.5, 0.5); rendering adds a uniform jitter of +-0.03 on each axis.
- half-extent ``h``: small 0.07, large 0.18, times a uniform jitter in [0.92, 1.08]. A circle has
  radius ``h``, a square side ``2h``, a triangle base ``2h`` and height ``2h`` (its centroid, not its
  bounding box, sits on the position, so a large triangle at the top may lose a sliver of its tip).
- area fractions that follow: small 0.008 (triangle) to 0.023 (square), large 0.055 (triangle) to
  0.151 (square). Measured after the 3 x 3 blur below, at 32 to 128 px, they read 0.011 to 0.036
  (small) and 0.064 to 0.19 (large), a little more on noisy grey backgrounds;
  :data:`AREA_THRESHOLD` = 0.05 sits between.

Measurement (:func:`measure_shape`), chosen to survive GAN outputs (noise, a dark grey rather than
black background, soft edges):

- the image is first blurred by a 3 x 3 mean filter, which cuts per-pixel noise 3x.
- foreground = pixels with HSV value > :data:`VALUE_THRESHOLD` (0.3) and saturation >
  :data:`SATURATION_THRESHOLD` (0.4); every named color is fully saturated, grey noise is not.
- color = majority vote of the foreground pixels' hues, each snapped to the nearest named hue.
- position = the named anchor nearest to the foreground centroid (so "center" is the square
  ``|dx|, |dy| < 0.125`` around the middle and the rest split along the diagonals).
- size = "large" when the foreground covers more than :data:`AREA_THRESHOLD` of the image.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from translate.core.errors import check_choice

logger = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "center")
ATTRIBUTES: tuple[str, ...] = ("shape", "color", "size", "position")

# Named colors, fully saturated so that hue alone separates them; hues (degrees) in the comment.
# Neighbours are at least 30 degrees apart, so a generator's hue may drift +-15 degrees.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),  # 0
    "orange": (255, 128, 0),  # 30
    "yellow": (255, 255, 0),  # 60
    "green": (0, 255, 0),  # 120
    "cyan": (0, 255, 255),  # 180
    "blue": (0, 0, 255),  # 240
    "purple": (145, 0, 255),  # 274
    "magenta": (255, 0, 200),  # 313
}

POSITION_ANCHORS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "center": (0.5, 0.5),
}
HALF_EXTENT: dict[str, float] = {"small": 0.07, "large": 0.18}
POSITION_JITTER = 0.03
MIN_IMAGE_SIZE = 32
SIZE_JITTER = 0.08

VALUE_THRESHOLD = 0.3
SATURATION_THRESHOLD = 0.4
AREA_THRESHOLD = 0.05

# Rendering at 4x and downsampling gives anti-aliased edges, like real (and generated) images.
_SUPERSAMPLE = 4

# Words parse_prompt accepts for each value (the first is the canonical word); captions use them too.
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "disk", "dot"),
    "square": ("square", "box"),
    "triangle": ("triangle", "triangular"),
}
COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red",),
    "orange": ("orange",),
    "yellow": ("yellow",),
    "green": ("green",),
    "cyan": ("cyan", "turquoise", "aqua"),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "magenta": ("magenta", "fuchsia"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "large": ("large", "big", "huge"),
}
POSITION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left",),
    "right": ("right",),
    "top": ("top", "upper"),
    "bottom": ("bottom", "lower"),
    "center": ("center", "centre", "centered", "centred", "middle"),
}

# Caption phrasings; {where} is a prepositional phrase ("on the left"), {side} a bare one ("left side").
TEMPLATES: tuple[str, ...] = (
    "a {size} {color} {shape} {where}",
    "{color} {shape}, {size}, {side}",
    "{where} there is a {size} {color} {shape}",
    "a {color} {shape} {where}, {size}",
    "{side}: a {size} {color} {shape}",
    "a {size} {shape} in {color}, {where}",
    "one {size} {color} {shape} {where} on black",
)
_WHERE: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left"),
    "right": ("on the right", "at the right"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "center": ("in the center", "in the middle"),
}
_SIDE: dict[str, tuple[str, ...]] = {
    "left": ("left side",),
    "right": ("right side",),
    "top": ("top", "upper part"),
    "bottom": ("bottom", "lower part"),
    "center": ("center", "middle"),
}


def render_shape(
    shape: str, color: str, size_name: str, position: str, image_size: int, rng: np.random.Generator
) -> Image.Image:
    """Draw one shape on black, with a small random jitter of its position and size.

    Args:
        shape: one of :data:`SHAPES`. color: a key of :data:`COLORS`. size_name: one of
            :data:`SIZES`. position: one of :data:`POSITIONS`.
        image_size: side ``S`` in pixels (>= 32; below that a small shape is a few pixels, which
            :func:`measure_shape` cannot read back reliably).
        rng: source of the jitter; the same generator state gives the same image.

    Returns:
        An RGB PIL image of ``S x S`` pixels.
    """
    check_choice("shape", shape, SHAPES)
    check_choice("color", color, tuple(COLORS))
    check_choice("size_name", size_name, SIZES)
    check_choice("position", position, POSITIONS)
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE} pixels, got {image_size!r}")
    big = image_size * _SUPERSAMPLE
    anchor_x, anchor_y = POSITION_ANCHORS[position]
    jitter_x, jitter_y = rng.uniform(-POSITION_JITTER, POSITION_JITTER, size=2)
    scale = rng.uniform(1.0 - SIZE_JITTER, 1.0 + SIZE_JITTER)
    cx, cy = (anchor_x + jitter_x) * big, (anchor_y + jitter_y) * big
    h = HALF_EXTENT[size_name] * scale * big
    canvas = Image.new("RGB", (big, big), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
    else:
        # Apex up; shifted by h/3 so that the centroid (not the bounding box) is at (cx, cy).
        draw.polygon([(cx, cy - 4 * h / 3), (cx - h, cy + 2 * h / 3), (cx + h, cy + 2 * h / 3)], fill=fill)
    return canvas.resize((image_size, image_size), Image.Resampling.BOX)


def make_caption(attrs: dict[str, str], rng: np.random.Generator, template: str | None = None) -> str:
    """One caption naming all four attributes, in a phrasing and with synonyms drawn by ``rng``.

    Args:
        attrs: ``{"shape", "color", "size", "position"}`` with values from :data:`SHAPES`,
            :data:`COLORS`, :data:`SIZES`, :data:`POSITIONS`.
        template: one of :data:`TEMPLATES` to force a phrasing; None draws one.

    Returns:
        e.g. ``"a large red circle on the left"``, ``"red circle, big, left side"``.
    """
    _check_attrs(attrs)
    if template is None:
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    else:
        check_choice("template", template, TEMPLATES)

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    # Only unambiguous synonyms in captions: "dot" or "box" read oddly in some templates.
    shape_word = pick({"circle": ("circle", "disc"), "square": ("square",), "triangle": ("triangle",)}[attrs["shape"]])
    return template.format(
        size=pick(SIZE_WORDS[attrs["size"]]),
        color=pick(COLOR_WORDS[attrs["color"]][:2]),
        shape=shape_word,
        where=pick(_WHERE[attrs["position"]]),
        side=pick(_SIDE[attrs["position"]]),
    )


def _check_attrs(attrs: dict[str, str]) -> None:
    missing = [name for name in ATTRIBUTES if name not in attrs]
    if missing:
        raise ValueError(f"attrs must have keys {ATTRIBUTES}; {missing} missing from {attrs!r}")
    check_choice("shape", attrs["shape"], SHAPES)
    check_choice("color", attrs["color"], tuple(COLORS))
    check_choice("size", attrs["size"], SIZES)
    check_choice("position", attrs["position"], POSITIONS)


_WORD_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "shape": SHAPE_WORDS,
    "color": COLOR_WORDS,
    "size": SIZE_WORDS,
    "position": POSITION_WORDS,
}


def parse_prompt(text: str) -> dict[str, str | None]:
    """Extract the shape, color, size and position a prompt names, from any phrasing.

    Matching is on whole words, case-insensitive, with the synonyms in :data:`SHAPE_WORDS`,
    :data:`COLOR_WORDS`, :data:`SIZE_WORDS`, :data:`POSITION_WORDS` (plural "circles" etc. too).

    Returns:
        ``{"shape", "color", "size", "position"}``, each a canonical value or None when the prompt
        does not name it.

    Raises:
        ValueError: the prompt names two different values of one attribute ("red and blue").
    """
    words = re.findall(r"[a-z]+", text.lower())
    words += [word[:-1] for word in words if word.endswith("s") and len(word) > 3]
    found: dict[str, str | None] = {}
    for attribute, table in _WORD_TABLES.items():
        values = sorted({value for value, synonyms in table.items() if any(w in synonyms for w in words)})
        if len(values) > 1:
            raise ValueError(
                f"prompt {text!r} names several {attribute}s: {values}; name one per prompt"
            )
        found[attribute] = values[0] if values else None
    return found


def _to_rgb_array(image: Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
    """PIL image, ``(H, W, 3)`` uint8 array or ``(3, H, W)`` tensor in [-1, 1] -> ``(H, W, 3)`` float in [0, 1]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(
                f"a tensor image must be (3, H, W) in [-1, 1], got shape {tuple(image.shape)}; "
                "pass one image of a batch at a time"
            )
        array = image.detach().float().cpu().permute(1, 2, 0).numpy().astype(np.float64)
        return np.clip((array + 1.0) / 2.0, 0.0, 1.0)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"an array image must be (H, W, 3) uint8, got shape {image.shape} dtype {image.dtype}; "
                "use a PIL image or a (3, H, W) tensor in [-1, 1] otherwise"
            )
        return image.astype(np.float64) / 255.0
    raise TypeError(
        f"image must be a PIL image, an (H, W, 3) uint8 array or a (3, H, W) tensor, got {type(image).__name__}"
    )


_COLOR_NAMES = tuple(COLORS)


def _hue_degrees(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RGB in [0, 1] -> ``(N,)`` HSV hue in degrees [0, 360)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    chroma = np.maximum(high - low, 1e-12)
    hue = np.where(
        high == r, ((g - b) / chroma) % 6.0, np.where(high == g, (b - r) / chroma + 2.0, (r - g) / chroma + 4.0)
    )
    return (hue * 60.0) % 360.0


_NAMED_HUES = _hue_degrees(np.array([COLORS[name] for name in _COLOR_NAMES], dtype=np.float64) / 255.0)


def _box_blur(rgb: np.ndarray) -> np.ndarray:
    """3 x 3 mean filter (edges replicated) of an ``(H, W, 3)`` array.

    Averaging 9 pixels cuts independent per-pixel noise 3x, so that a noisy dark background no
    longer crosses the value / saturation thresholds, while a shape's hue is unchanged (its edge
    pixels mix with near-black, which lowers value, not hue).
    """
    padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = rgb.shape[:2]
    total = sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))
    return total / 9.0


def measure_shape(image: Image.Image | np.ndarray | torch.Tensor) -> dict[str, object]:
    """Measure the color, position and size of the (single) shape in an image.

    Args:
        image: a PIL image, an ``(H, W, 3)`` uint8 array, or a ``(3, H, W)`` tensor in [-1, 1]
            (a generator's output).

    Returns:
        ``{"color", "position", "size"}`` (named values, None when no foreground pixel is found),
        ``"hue"`` (circular mean of the foreground hues, degrees, or None), ``"centroid"``
        (``(x, y)`` in fractions of width / height, or None) and ``"area"`` (foreground fraction).
        Thresholds and regions are in the module docstring.
    """
    rgb = _box_blur(_to_rgb_array(image))
    height, width = rgb.shape[:2]
    value = rgb.max(axis=2)
    saturation = (value - rgb.min(axis=2)) / np.maximum(value, 1e-12)
    mask = (value > VALUE_THRESHOLD) & (saturation > SATURATION_THRESHOLD)
    area = float(mask.mean())
    if not mask.any():
        return {"color": None, "position": None, "size": None, "hue": None, "centroid": None, "area": 0.0}
    hues = _hue_degrees(rgb[mask])
    # Circular distance to every named hue; a vote is robust to stray noise pixels, a mean is not.
    distance = np.abs((hues[:, None] - _NAMED_HUES[None, :] + 180.0) % 360.0 - 180.0)
    votes = np.bincount(distance.argmin(axis=1), minlength=len(_COLOR_NAMES))
    radians = np.deg2rad(hues)
    mean_hue = float(np.rad2deg(np.arctan2(np.sin(radians).mean(), np.cos(radians).mean())) % 360.0)
    ys, xs = np.nonzero(mask)
    centroid = ((float(xs.mean()) + 0.5) / width, (float(ys.mean()) + 0.5) / height)
    position = min(
        POSITION_ANCHORS,
        key=lambda name: math.dist(POSITION_ANCHORS[name], centroid),
    )
    return {
        "color": _COLOR_NAMES[int(votes.argmax())],
        "position": position,
        "size": "large" if area > AREA_THRESHOLD else "small",
        "hue": mean_hue,
        "centroid": centroid,
        "area": area,
    }


def conditioning_accuracy(
    images: Sequence[Image.Image | np.ndarray | torch.Tensor] | torch.Tensor, prompts: Sequence[str]
) -> dict[str, float]:
    """How often the measured color, position and size match what each prompt asked for.

    Args:
        images: generated images, one per prompt: a ``(B, 3, H, W)`` tensor in [-1, 1] or a
            sequence of anything :func:`measure_shape` takes.
        prompts: ``B`` prompts; each is read with :func:`parse_prompt`.

    Returns:
        ``{"color", "position", "size"}``: fraction correct among the prompts that name that
        attribute (NaN when none does), and ``"n"``: the number of images.

    Raises:
        ValueError: the counts differ, or a prompt names two values of one attribute.
    """
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts; pass one prompt per image")
    correct = {name: 0 for name in ("color", "position", "size")}
    asked = dict.fromkeys(correct, 0)
    for image, prompt in zip(images, prompts, strict=False):
        wanted = parse_prompt(prompt)
        measured = measure_shape(image)
        for name in correct:
            if wanted[name] is not None:
                asked[name] += 1
                correct[name] += int(measured[name] == wanted[name])
    result: dict[str, float] = {
        name: correct[name] / asked[name] if asked[name] else float("nan") for name in correct
    }
    result["n"] = len(prompts)
    return result


def _balanced_attributes(n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """``n`` attribute sets cycling through every combination (240) in shuffled rounds."""
    combos = [
        {"shape": s, "color": c, "size": z, "position": p}
        for s in SHAPES for c in COLORS for z in SIZES for p in POSITIONS
    ]
    chosen: list[dict[str, str]] = []
    while len(chosen) < n:
        chosen.extend(combos[i] for i in rng.permutation(len(combos)))
    return chosen[:n]


def make_shapes_dataset(
    out: str | os.PathLike[str],
    n: int,
    size: int,
    seed: int,
    val_fraction: float = 0.1,
    captions_per_image: int = 3,
) -> dict[str, int]:
    """Write the captioned shapes data set.

    Layout::

        out/train/00000.png ...  out/train/captions.jsonl   {"file": "00000.png", "text": "..."} x3 per image
        out/val/...              (the same, round(n * val_fraction) images)
        out/attributes.jsonl     {"file": "train/00000.png", "shape", "color", "size", "position"}

    Attributes cycle through all 240 combinations in shuffled rounds, so every value is about
    equally frequent. The same arguments give byte-identical files.

    Returns:
        ``{"train": count, "val": count}``.

    Raises:
        ValueError: ``n`` < 1, ``size`` < 32, ``val_fraction`` outside [0, 1), ``captions_per_image`` < 1.
        FileExistsError: ``out`` already holds a shapes data set (train/, val/ or attributes.jsonl).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image must be at least 1, got {captions_per_image!r}")
    if size < MIN_IMAGE_SIZE:
        raise ValueError(f"size must be at least {MIN_IMAGE_SIZE} pixels, got {size!r}")
    out = Path(out)
    existing = [out / name for name in ("train", "val", "attributes.jsonl") if (out / name).exists()]
    if existing:
        raise FileExistsError(
            f"{existing[0]} already exists; choose another `out` folder or delete the old data set first"
        )
    rng = np.random.default_rng(seed)
    n_val = int(round(n * val_fraction))
    splits = {"train": n - n_val, "val": n_val}
    all_attrs = _balanced_attributes(n, rng)
    out.mkdir(parents=True, exist_ok=True)
    index = 0
    with open(out / "attributes.jsonl", "w", encoding="utf-8") as attributes_file:
        for split, count in splits.items():
            if count == 0:
                continue
            folder = out / split
            folder.mkdir()
            with open(folder / "captions.jsonl", "w", encoding="utf-8") as captions_file:
                for _ in range(count):
                    attrs = all_attrs[index]
                    name = f"{index:05d}.png"
                    image = render_shape(attrs["shape"], attrs["color"], attrs["size"], attrs["position"], size, rng)
                    image.save(folder / name)
                    captions: list[str] = []
                    # Distinct phrasings where possible; a few tries, then duplicates are fine.
                    for _try in range(captions_per_image * 4):
                        caption = make_caption(attrs, rng)
                        if caption not in captions:
                            captions.append(caption)
                        if len(captions) == captions_per_image:
                            break
                    for caption in captions:
                        captions_file.write(json.dumps({"file": name, "text": caption}) + "\n")
                    attributes_file.write(json.dumps({"file": f"{split}/{name}", **attrs}) + "\n")
                    index += 1
    logger.info("wrote %d train and %d val shapes images to %s", splits["train"], splits["val"], out)
    return splits
