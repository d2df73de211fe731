"""Deprecated alias of `translate.formats.weights`, where this module moved; import from there.

Kept so that code written against earlier releases keeps working; it will be removed.
"""

import warnings

from translate.formats.weights import *  # noqa: F403 - the public names of the module that moved

warnings.warn("translate.weights moved to translate.formats.weights; import from there (this alias will be removed)",
              DeprecationWarning, stacklevel=2)
