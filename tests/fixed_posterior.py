"""Old import path of ``tests.support.fixed_posterior``, for the test modules not yet moved.

Goes once tests/test_workflow.py, tests/test_notebooks.py and tests/test_filter_cache.py import
``tests.support.fixed_posterior``. The same module object, private names included.
"""

import sys

from tests.support import fixed_posterior

sys.modules[__name__] = fixed_posterior
