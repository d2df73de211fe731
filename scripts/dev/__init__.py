"""Development tools:

    python -m scripts.dev.code_stats                 # modules, lines, the longest functions, import cycles
    python -m scripts.dev.make_legacy_fixtures --checkout /tmp/legacy_<commit> --out tests/fixtures/legacy_<commit>
"""
