"""Evaluation of generated images: the procedural shapes data set and its conditioning metric."""

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
