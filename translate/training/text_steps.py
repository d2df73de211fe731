"""Old home of the text2image step, kept for scripts/bench_ma_gp.py: it now lives in
translate.training.tasks.text2image. Import from there in new code."""

from translate.training.tasks.text2image import Text2ImageStep, mismatch_order

__all__ = ["Text2ImageStep", "mismatch_order"]
