"""pcbseg: semantic segmentation of printed-circuit-board photos.

    >>> import pcbseg
    >>> model = pcbseg.load_model("logs/train/runs/<run>/checkpoints/best.ckpt")   # doctest: +SKIP
    >>> mask = model.predict("board.jpg")                                           # doctest: +SKIP
    >>> datamodule, model = pcbseg.build(["model=fpn", "data.batch_size=4"])          # doctest: +SKIP

See docs/api.md.
"""

import os
from typing import Any

# albumentations asks PyPI for updates on import; that hangs or fails offline, and we never want it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
__all__ = ["CheckpointError", "__version__", "build", "load_model", "read_checkpoint"]


def __getattr__(name: str) -> Any:
    # Lazy: `import pcbseg` stays cheap for the CLIs' --help and for scripts that need one submodule.
    if name in ("build", "load_model", "read_checkpoint", "CheckpointError"):
        from pcbseg import api

        return getattr(api, name)
    raise AttributeError(f"module 'pcbseg' has no attribute {name!r}")
