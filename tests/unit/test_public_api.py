"""The package's public names: sorted, importable, and nothing private."""

from __future__ import annotations

import autotune


def test_all_is_unique_and_importable() -> None:
    # Its order is ruff's (RUF022), checked by `ruff check`.
    assert len(set(autotune.__all__)) == len(autotune.__all__)
    for name in autotune.__all__:
        assert getattr(autotune, name) is not None
    assert not [n for n in autotune.__all__ if n.startswith("_") and n != "__version__"]
