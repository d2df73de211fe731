"""Domain folders for text-guided multi-domain translation (the textcycle task).

Layout: ``DIR/`` (or ``DIR/train/``, and optionally ``DIR/val/`` / ``DIR/test/``) holds one
subfolder per domain, each with its images and a ``prompts.txt`` (one phrasing per line)::

    maps_domains/train/aerial/1.jpg ... prompts.txt   ("aerial photo", "satellite image", ...)
    maps_domains/train/map/1.jpg ...    prompts.txt   ("map", "a street map", ...)

:class:`DomainDataset` serves one image of one domain per item, with a target domain and the
prompts that name both: everything the textcycle step needs, drawn deterministically from
``(seed, epoch, index)`` so that workers and resumed runs draw the same.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from translate.data.captions import PROMPTS_NAME, read_domain_prompts
from translate.data.images import ImageReadError, list_images, load_image
from translate.data.transforms import PreprocessConfig, prepare_image

logger = logging.getLogger(__name__)

__all__ = ["DomainDataset", "domain_folder", "read_domains"]


def _layout(root: Path) -> str:
    return (
        "expected layout (textcycle: one folder per domain, at least two):\n"
        f"  {root}/            (or {root}/train/, with {root}/val/ optional)\n"
        f"  |-- aerial/   images + {PROMPTS_NAME}   ('aerial photo', 'satellite image', ... one per line)\n"
        f"  `-- map/      images + {PROMPTS_NAME}   ('map', 'a street map', ...)\n"
        "`translate data make-text-domains` splits a paired A|B folder (pix2pix layout) into this layout"
    )


def domain_folder(root: str | os.PathLike[str], phase: str = "train") -> Path:
    """The folder whose subfolders are the domains: ``root/phase`` when it exists, else ``root``
    itself for ``phase="train"``.

    Raises:
        FileNotFoundError: ``root`` is missing, or ``root/phase`` is missing for a phase other than train.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist.\n{_layout(root)}")
    if (root / phase).is_dir():
        return root / phase
    if phase == "train":
        return root
    raise FileNotFoundError(f"no {phase} split at {root / phase}; make one with the train split's layout.\n"
                            f"{_layout(root)}")


def read_domains(root: str | os.PathLike[str], phase: str = "train") -> dict[str, list[str]]:
    """``{domain name: its prompts}`` of the domain folders under ``root`` (see :func:`domain_folder`),
    sorted by name. Checks the prompts only; :class:`DomainDataset` also checks the images.

    Raises:
        FileNotFoundError: a missing folder, a domain without ``prompts.txt``.
        ValueError: fewer than two domains, an empty ``prompts.txt``.
    """
    folder = domain_folder(root, phase)
    try:
        prompts = read_domain_prompts(folder)
    except (FileNotFoundError, ValueError) as error:
        raise type(error)(f"{error}\n{_layout(Path(root))}") from None
    if len(prompts) < 2:
        raise ValueError(f"{folder} holds {len(prompts)} domain folder ({', '.join(prompts)}); textcycle "
                         f"translates between domains and needs at least two.\n{_layout(Path(root))}")
    return prompts


class DomainDataset(Dataset):
    """Images of several domains, one per item, each with a target domain and prompts.

    An epoch has ``n_domains * max(images per domain)`` items. Item ``i`` is from domain
    ``i % n_domains`` (so every epoch is balanced over the domains, whatever their sizes); its
    image walks a per-(seed, epoch, domain) permutation of that domain's images, repeated for the
    smaller domains. The target domain (never the source) and the prompts are drawn from
    ``random.Random(f"{seed}:{epoch}:{i}")``: ``prompt`` names the source domain, ``target_prompt``
    the target, ``cycle_prompt`` the source again in another phrasing where it has several.
    Call :meth:`set_epoch` before each epoch.

    Items: ``{"image": (C, H, W) uint8 (CPU resize applied; crop and flip happen on the device
    with augment_batch), "domain": () int64, "target_domain": () int64, "prompt": str,
    "target_prompt": str, "cycle_prompt": str, "path": str}``, or ``{"error": path, "reason": why}``
    for an unreadable file (dropped by :func:`translate.data.collate_images`).

    Raises:
        FileNotFoundError: missing folder, a domain without ``prompts.txt`` or without images.
        ValueError: fewer than two domains, an empty ``prompts.txt``, channels not 1, 3 or 4.
    """

    def __init__(self, root: str | os.PathLike[str], phase: str = "train", channels: int = 3,
                 preprocess: PreprocessConfig | None = None, seed: int = 0) -> None:
        if channels not in (1, 3, 4):
            raise ValueError(f"channels must be 1, 3 or 4, got {channels!r}")
        self.root = Path(root)
        self.phase = phase
        self.channels = channels
        self.preprocess = preprocess if preprocess is not None else PreprocessConfig()
        self.seed = seed
        self.epoch = 0
        self.prompts = read_domains(self.root, phase)
        self.folder = domain_folder(self.root, phase)
        self.domain_names: list[str] = list(self.prompts)
        self.paths: list[list[Path]] = []
        for name in self.domain_names:
            images = list_images(self.folder / name)
            if not images:
                raise FileNotFoundError(f"domain folder {self.folder / name} holds no images; add the "
                                        f"domain's images or remove the folder.\n{_layout(self.root)}")
            self.paths.append(images)
        self._orders: dict[int, list[list[int]]] = {}
        logger.debug("%s", self.describe())

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose image order and draws :meth:`__getitem__` returns."""
        self.epoch = int(epoch)

    def _order(self, domain: int) -> list[int]:
        orders = self._orders.get(self.epoch)
        if orders is None:  # one permutation per domain and epoch, computed once per process
            orders = [random.Random(f"{self.seed}:{self.epoch}:domain:{d}").sample(range(len(paths)), len(paths))
                      for d, paths in enumerate(self.paths)]
            self._orders = {self.epoch: orders}
        return orders[domain]

    def __len__(self) -> int:
        return len(self.domain_names) * max(len(paths) for paths in self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        n_domains = len(self.domain_names)
        source = index % n_domains
        order = self._order(source)
        path = self.paths[source][order[(index // n_domains) % len(order)]]
        # A string seed is hashed with SHA-512: the same draw in every worker, process and run.
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        target = rng.choice([d for d in range(n_domains) if d != source])
        source_prompts = self.prompts[self.domain_names[source]]
        prompt = rng.choice(source_prompts)
        others = [p for p in source_prompts if p != prompt] or source_prompts
        target_prompt = rng.choice(self.prompts[self.domain_names[target]])
        cycle_prompt = rng.choice(others)
        try:
            image = prepare_image(load_image(path, self.channels), self.preprocess)
        except ImageReadError as error:
            logger.warning("skipping %s: %s", error.path, error.reason)
            return {"error": error.path, "reason": error.reason}
        return {"image": image, "domain": torch.tensor(source), "target_domain": torch.tensor(target),
                "prompt": prompt, "target_prompt": target_prompt, "cycle_prompt": cycle_prompt,
                "path": str(path)}

    def describe(self) -> str:
        """One line for logs: folder, images per domain, items per epoch."""
        counts = ", ".join(f"{name} {len(paths)}" for name, paths in zip(self.domain_names, self.paths, strict=False))
        return f"domain dataset {self.folder}: {counts} images; {len(self)} items per epoch"
