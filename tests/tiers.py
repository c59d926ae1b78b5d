"""Kernel tiers in tests: every op's tests run under each tier this machine supports.

``_core.supported_tiers()`` lists the tiers that may run here (portable up to the best this CPU
supports, capped by VITC_TIER); ``at_tier`` runs a block at one of them and restores the tier after.
``attention_emulation`` runs the AVX-512 BF16 attention's source on its portable emulation (any CPU).
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


@contextlib.contextmanager
def attention_emulation() -> Iterator[None]:
    """Run the bf16 attention (kernel hook and models) as the AVX-512 BF16 code on the portable
    emulation of its instructions, whatever the CPU, inside the block."""
    _core._set_attention_emulation(True)
    try:
        yield
    finally:
        _core._set_attention_emulation(False)
