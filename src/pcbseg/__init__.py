"""pcbseg: semantic segmentation of printed-circuit-board photos."""

import os

# albumentations asks PyPI for updates on import; that hangs or fails offline, and we never want it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
