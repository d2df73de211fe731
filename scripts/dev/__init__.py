"""Development tools:

    python -m scripts.dev.code_stats                 # modules, lines, the longest functions, import cycles
    python -m scripts.dev.make_legacy_fixtures --checkout /tmp/legacy --out tests/fixtures/legacy_7ce1752
"""
