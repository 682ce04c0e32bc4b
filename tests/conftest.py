"""Shared test settings.

Under CI (the CI environment variable is set) hypothesis runs derandomized: the same examples on every
run, so a submission's CI result does not depend on which random examples that run happened to draw.
Locally it keeps exploring new examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
