"""Old import path of ``tests.support.oracles``, for the test modules not yet moved.

Goes once tests/test_workflow.py, tests/test_notebooks.py and tests/test_filter_cache.py import
``tests.support.oracles``. The same module object, private names included.
"""

import sys

from tests.support import oracles

sys.modules[__name__] = oracles
