"""Whole synthetic boards and datasets: :func:`render_board` (layout, paint, camera) and :func:`write_dataset`.

Example:
    >>> image, mask = render_board(seed=0, size=64)
    >>> image.shape, mask.shape
    ((64, 64, 3), (64, 64))
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from pcbseg import __version__
from pcbseg.data.layout import DatasetLayout, write_image, write_mask
from pcbseg.data.splits import make_splits, write_splits
from pcbseg.data.synth.appearance import camera, paint
from pcbseg.data.synth.board import Board
from pcbseg.data.synth.scene import check_look
from pcbseg.jsonfile import write_json
from pcbseg.taxonomy import Taxonomy, get_taxonomy


def render_board(seed: int, size: int = 384, taxonomy: str | Taxonomy = "default",
                 px_per_mm: tuple[float, float] = (6.0, 16.0), look: str = "classic") -> tuple[np.ndarray, np.ndarray]:
    """Render one board photo and its label mask.

    Args:
        seed: everything random follows from it; same seed, same bytes.
        size: output side in pixels (square).
        taxonomy: ``"default"``, ``"fine"`` or a :class:`~pcbseg.taxonomy.Taxonomy`.
        px_per_mm: range the board's scale is drawn from.
        look: ``classic``, or ``photo`` for what real photos add (stray ink, oblique views, lens
            distortion, glare, exposure and white balance; :mod:`.scene`).

    Returns:
        ``(image, mask)``: ``size x size x 3`` RGB uint8 and ``size x size`` uint8 class ids
        (``taxonomy.ignore_index`` where the camera saw past the rendered area).

    Example:
        >>> image, mask = render_board(seed=3, size=96, taxonomy="fine")
        >>> bool((mask == render_board(seed=3, size=96, taxonomy="fine")[1]).all())
        True
    """
    tax = get_taxonomy(taxonomy) if isinstance(taxonomy, str) else taxonomy
    rng = np.random.default_rng(seed)
    ppm = float(rng.uniform(*px_per_mm))
    canvas = int(math.ceil(size * 1.2)) + 8  # margin for rotation and perspective
    board = Board(rng, canvas, ppm, tax)
    area_mm2 = (canvas / ppm) ** 2
    board.via_size = (rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.45))
    # Big footprints first: they would rarely find room once the small parts are down.
    board.mounting_holes()
    board.place_tht_rows(int(rng.integers(1, 5)))
    board.place_parts(int(area_mm2 / rng.uniform(8, 20)))
    board.route_traces(int(len(board.pins) * rng.uniform(0.2, 0.5)) + 2, [0.2, 0.25, 0.3, 0.4, 0.5, 0.8, 1.2])
    board.route_buses(int(rng.integers(0, 3)))
    board.scatter_vias(int(area_mm2 / rng.uniform(25, 90)))
    # Trace (mostly pours) is 30-60% of the pixels in 10 of the 14 registered shared photos; the photo look draws pours more
    # often, half of them as a whole ground plane. The classic look keeps its draws (and its bytes).
    if rng.random() < (0.7 if look == "photo" else 0.35):
        board.pour(whole=look == "photo" and rng.random() < 0.5)
    board.silkscreen({})
    img = paint(board.layers, ppm, rng, board.comp_alpha, board.comp_rgb, board.comp_metal, look=look)
    return camera(rng, img, board.label_map(), size, tax.ignore_index, look)



SYNTH_META = "synth.json"


def board_seed(seed: int, index: int) -> int:
    """The seed of board ``index`` in a dataset made with ``seed``: independent streams per board."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def _write_board(args: tuple[Path, int, int, int, str, str, str]) -> str:
    images, index, seed, size, taxonomy, ext, look = args
    cv2.setNumThreads(1)  # one board per process already fills the cores
    image_id = f"board_{index:05d}"
    image, mask = render_board(board_seed(seed, index), size, taxonomy, look=look)
    write_image(images / f"{image_id}.{ext}", image)
    write_mask(images.parent / "masks" / f"{image_id}.png", mask)
    return image_id


def _notify(callback: Callable[[str], None] | None, image_id: str) -> str:
    if callback is not None:
        callback(image_id)
    return image_id


def write_dataset(
    out: str | Path,
    num_boards: int = 200,
    size: int = 384,
    seed: int = 0,
    taxonomy: str = "default",
    valid_pct: float = 0.2,
    test_pct: float = 0.0,
    workers: int | None = None,
    image_format: str = "png",
    overwrite: bool = False,
    on_board: Callable[[str], None] | None = None,
    look: str = "classic",
) -> Path:
    """Render ``num_boards`` boards into a dataset folder in the canonical layout.

    The folder is built beside ``out`` and moved into place when complete, so an interrupted run
    never leaves a half dataset behind. An existing non-empty ``out`` is refused unless
    ``overwrite``. Each board is its own group in ``splits.csv``. ``on_board`` is called with each
    finished board's id (for progress bars). ``look``: see :func:`render_board`.

    Example:
        >>> import tempfile, pathlib
        >>> root = write_dataset(pathlib.Path(tempfile.mkdtemp()) / "synth", num_boards=3, size=64, workers=1)
        >>> sorted(p.name for p in root.iterdir())
        ['classes.yaml', 'images', 'masks', 'splits.csv', 'synth.json']
    """
    out = Path(out)
    if num_boards < 1:
        raise ValueError(f"num_boards must be at least 1, got {num_boards}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    tax = get_taxonomy(taxonomy)
    check_look(look)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: not empty; pass overwrite=true to replace it, or choose another out=")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        layout = DatasetLayout(tmp)
        layout.images.mkdir()
        layout.masks.mkdir()
        jobs = [(layout.images, i, seed, size, taxonomy, image_format, look) for i in range(num_boards)]
        workers = workers or os.cpu_count() or 1
        if workers > 1 and num_boards > 4:
            ctx = multiprocessing.get_context("spawn")  # fork after torch/cv2 threads start can hang
            with ProcessPoolExecutor(min(workers, num_boards), mp_context=ctx) as pool:
                done = pool.map(_write_board, jobs, chunksize=max(1, num_boards // (8 * workers)))
                ids = [_notify(on_board, i) for i in done]
        else:
            ids = [_notify(on_board, _write_board(j)) for j in jobs]
        tax.save(layout.classes)
        write_splits(layout.splits, make_splits(ids, valid_pct, test_pct, seed))
        meta = {"generator": "pcbseg.data.synth", "version": __version__, "num_boards": num_boards, "size": size,
                "seed": seed, "taxonomy": taxonomy, "valid_pct": valid_pct, "test_pct": test_pct,
                "image_format": image_format, "look": look}
        write_json(tmp / SYNTH_META, meta)
        if out.exists():
            shutil.rmtree(out) if overwrite else out.rmdir()  # rmdir: only an empty folder goes
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

