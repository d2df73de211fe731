"""Deprecated alias of `translate.deploy.export`, where this module moved; import from there.

Kept so that code written against earlier releases keeps working; it will be removed.
"""

import warnings

from translate.deploy.export import *  # noqa: F403 - the public names of the module that moved

warnings.warn("translate.export moved to translate.deploy.export; import from there (this alias will be removed)",
              DeprecationWarning, stacklevel=2)
