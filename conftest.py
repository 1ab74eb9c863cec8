"""Test-suite settings shared by the package tests, the doctests and the notebooks (nbval).

Environment variables of the pytest process reach the notebooks' kernels, so FAST mode and a
headless matplotlib hold for every lesson run by nbval.
"""

import os
import tempfile

os.environ.setdefault("DLCOURSE_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Lessons share trained rows through a cache (dlcourse.training.experiments); the suite starts from an empty
# one, as on a fresh machine, so it measures and asserts what a newcomer gets.
os.environ.setdefault("DLCOURSE_CACHE", tempfile.mkdtemp(prefix="dlcourse-test-cache-"))
