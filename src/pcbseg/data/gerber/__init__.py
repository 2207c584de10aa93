"""Ground truth from board designs: Gerber + Excellon files to labelled, photo-like images.

files.py (which file is which layer; gerbonara with its gaps filled) -> raster.py (geometry to
pixels) -> labels.py (per-side layers and label maps, by X2 attribute or by rule) -> render.py
(appearance model) -> importer.py (``pcbseg-import gerber``). example.py writes a tiny board.
"""
