"""Suite-wide settings: hypothesis profiles (CI runs the bounded one)."""

import os

from hypothesis import HealthCheck, settings

# CI draws the same examples every run (reproducible landings); local runs keep exploring new ones.
settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
