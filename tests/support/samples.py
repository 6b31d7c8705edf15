"""The workplace's shared third-party samples (``../shared/samples`` from the project root; CI has the
same folder). ``ORDERSYNC_SAMPLES`` points elsewhere (a checkout outside the workplace)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def samples_dir() -> Path:
    """The folder holding ``x12/``, ``shopify/`` ...; a clear error when it cannot be found."""
    candidates = [Path(os.environ["ORDERSYNC_SAMPLES"])] if os.environ.get("ORDERSYNC_SAMPLES") else []
    candidates += [parent / "shared" / "samples" for parent in ROOT.parents]
    for candidate in candidates:
        if (candidate / "README.md").is_file():
            return candidate
    raise FileNotFoundError(f"the shared samples are not in any of {[str(c) for c in candidates]}: clone the "
                            "project beside the workplace's shared/ folder or set ORDERSYNC_SAMPLES")
