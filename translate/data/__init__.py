"""Training and evaluation data: reading image folders into batches, nothing about models.

It sits on `translate.core` only. It owns:

- `images`: listing, decoding (with a pixel limit) and channel conversion of image files; bad
  files become `ImageReadError`, which the datasets turn into skipped items.
- `datasets`: `UnpairedDataset` (CycleGAN), `PairedDataset` (pix2pix, three layouts) and
  `collate_images`.
- `captions`: captioned image folders (text2image); `domains`: domain folders with prompts
  (textcycle); `text_domains`: domain folders split from a paired data set.
- `transforms`: `PreprocessConfig` and the reference's preprocess modes, split into a CPU part and
  a batched device part (`augment_batch`, `augment_pair`, `eval_transform`).
- `sampler`: `ResumableSampler`, an epoch order that a resumed run continues mid-epoch.

Split of the work: DataLoader workers decode and resize each image on the CPU to a uint8 tensor
(:class:`UnpairedDataset`, :class:`PairedDataset`, :func:`collate_images`); the training loop
moves the batch to its device and calls :func:`augment_batch` (random crop / flip, scale to
[-1, 1]) or :func:`eval_transform`, with a seeded ``torch.Generator``.
"""

from translate.data.cache import CachedDataset, CachedLoader, CacheTooLargeError, cache_dataset
from translate.data.datasets import PAIRED_LAYOUTS, PairedDataset, UnpairedDataset, collate_images
from translate.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    convert_channels,
    decode_image,
    is_image_file,
    list_images,
    load_image,
    to_uint8_tensor,
)
from translate.data.sampler import ResumableSampler
from translate.data.transforms import (
    CROP_MODES,
    PREPROCESS_MODES,
    PreprocessConfig,
    augment_batch,
    augment_pair,
    eval_transform,
    prepare_image,
    resize_for_batching,
)

__all__ = [
    "CROP_MODES",
    "IMAGE_EXTENSIONS",
    "PAIRED_LAYOUTS",
    "PREPROCESS_MODES",
    "CacheTooLargeError",
    "CachedDataset",
    "CachedLoader",
    "ImageReadError",
    "PairedDataset",
    "PreprocessConfig",
    "ResumableSampler",
    "UnpairedDataset",
    "augment_batch",
    "augment_pair",
    "cache_dataset",
    "collate_images",
    "convert_channels",
    "decode_image",
    "eval_transform",
    "is_image_file",
    "list_images",
    "load_image",
    "prepare_image",
    "resize_for_batching",
    "to_uint8_tensor",
]
