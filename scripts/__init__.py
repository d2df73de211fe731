"""The repository's own measuring and development scripts (not part of the installed `translate`
package). Run them from the repository root as modules:

    python -m scripts.bench.infer --quick            # benchmarks: scripts/bench/
    python -m scripts.studies.h2z_equal_compute ...  # studies that train and score models: scripts/studies/
    python -m scripts.dev.code_stats                 # development tools: scripts/dev/
"""
