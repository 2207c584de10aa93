"""Procedural circuit-board photos with exact per-pixel labels (OpenCV and NumPy only).

A board is laid out in millimetres (components on their pads, 45°/90° traces and buses, vias,
through-hole pads, mounting holes and screws, silkscreen, copper pours), rasterised at a random
scale into hard per-class label layers, and painted from those same layers, so image and mask are
pixel-aligned by construction. The camera then adds what a phone or microscope photo has: uneven
light, glints on metal, slight rotation and perspective, blur, sensor noise and JPEG artefacts.

Everything random comes from one ``numpy.random.Generator`` seeded by ``seed``: the same seed and
size give byte-identical image and mask.

Example:
    >>> from pcbseg.data.synth import render_board
    >>> image, mask = render_board(seed=0, size=128)
    >>> image.shape, image.dtype.name, mask.shape, int(mask.max()) < 7
    ((128, 128, 3), 'uint8', (128, 128), True)

The package, one module a job: :mod:`.parts` (the footprint and body catalogue), :mod:`.board`
(layout and rasterisation into layers and labels), :mod:`.appearance` (how layers photograph; the
Gerber renderer uses it too) and :mod:`.writer` (whole boards and datasets).
"""

from pcbseg.data.synth.appearance import BoardLayers, camera, paint, sensor
from pcbseg.data.synth.writer import SYNTH_META, board_seed, render_board, write_dataset

__all__ = ["SYNTH_META", "BoardLayers", "board_seed", "camera", "paint", "render_board", "sensor", "write_dataset"]
