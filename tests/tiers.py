"""Kernel tiers in tests: every op's tests run under each tier this machine supports.

``_core.supported_tiers()`` lists the tiers that may run here (portable up to the best this CPU
supports, capped by VITC_TIER); ``at_tier`` runs a block at one of them and restores the tier after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from vitc import _core

TIERS = _core.supported_tiers()


@contextlib.contextmanager
def at_tier(name: str) -> Iterator[str]:
    """Run the kernels of tier ``name`` inside the block."""
    before = _core.tier()
    _core._set_tier(name)
    try:
        yield name
    finally:
        _core._set_tier(before)
