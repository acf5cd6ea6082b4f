"""How many examples a property test tries: its thorough count, scaled by the loaded profile."""

from __future__ import annotations

from hypothesis import settings

# The `ci` profile's max_examples (hypothesis' own default): a test's thorough count runs as is.
THOROUGH = 100


def examples(thorough: int) -> int:
    """`thorough` under the `ci` profile; the same share of it as the loaded profile has of ci."""
    return max(1, thorough * settings.default.max_examples // THOROUGH)
