"""Deprecated alias of `translate.deploy.backends`, where this module moved; import from there.

Kept so that code written against earlier releases keeps working; it will be removed.
"""

import warnings

from translate.deploy.backends import *  # noqa: F403 - the public names of the module that moved

warnings.warn("translate.backends moved to translate.deploy.backends; import from there (this alias will be removed)",
              DeprecationWarning, stacklevel=2)
