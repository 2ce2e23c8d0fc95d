"""Small helpers for loading and checking many specs quickly."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    Loading specs and building the routing graph make no reference cycles,
    but each batch of new objects triggers collections that rescan every
    object alive: with 100,000 aliases that costs more than the work itself.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
