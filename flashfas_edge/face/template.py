"""The canonical 5-point face template that alignment (docs/ARCHITECTURE.md §1 step 7) warps faces
onto."""

from __future__ import annotations

import numpy as np

# Five points (eyes, nose tip, mouth corners) in a unit square, with a wide margin so that the
# aligned crop keeps forehead, cheeks and jaw: shading across them is what the flash reveals.
_UNIT_TEMPLATE = np.array(
    [
        [0.3450, 0.4100],
        [0.6550, 0.4100],
        [0.5000, 0.5650],
        [0.3700, 0.7000],
        [0.6300, 0.7000],
    ],
    dtype=np.float32,
)


def canonical_template(size: int) -> np.ndarray:
    """float32 [5, 2] landmark positions in a ``size`` × ``size`` aligned crop."""
    if size < 16:
        raise ValueError(f"aligned size must be at least 16 pixels, got {size}")
    return np.ascontiguousarray(_UNIT_TEMPLATE * np.float32(size))
