"""Search spaces over knob specs."""

from autotune.space._space import SPECIAL_PROBABILITY, Space

__all__ = ["SPECIAL_PROBABILITY", "Space"]
