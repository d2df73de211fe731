"""Deprecated alias of `translate.deploy.convert`, where this module moved; import from there.

Kept so that code written against earlier releases keeps working; it will be removed.
"""

import warnings

from translate.deploy.convert import *  # noqa: F403 - the public names of the module that moved

warnings.warn("translate.convert moved to translate.deploy.convert; import from there (this alias will be removed)",
              DeprecationWarning, stacklevel=2)
