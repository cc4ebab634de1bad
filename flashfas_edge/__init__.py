"""FlashFAS Edge: flash-based face liveness for access-control kiosks."""

__version__ = "0.1.0"
