"""Studies that train and score models to answer one question (docs/benchmarks.md gives their results):

    python -m scripts.studies.h2z_equal_compute --data ../shared/datasets/horse2zebra --out runs/h2z_equal
"""
