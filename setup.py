"""Packaging that pyproject.toml cannot say: the top-level weights/ folder (the bundled models) ships
inside the package as `translate/bundled/`, so a wheel carries them. The folder stays where it is
in the repository; translate.core.paths looks for the package copy first, then for weights/ beside
the package (a checkout or an editable install). Which files of it ship: package-data in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

# Its model folders are listed too: Python sees them as (namespace) packages.
BUNDLED = ["translate.bundled", *(f"translate.bundled.{name}" for name in find_namespace_packages(where="weights"))]

setup(
    packages=[*find_namespace_packages(include=["translate*"]), *BUNDLED],
    package_dir={"translate.bundled": "weights"},
)
