"""Parts of scripts/bench_infer.py: `side_by_side` (`--compare-convert`)."""
