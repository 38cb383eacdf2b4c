"""The benchmarks that need servers use the test suite's real processes and users."""
from tests.conftest import *  # noqa: F401,F403  (fixtures)
