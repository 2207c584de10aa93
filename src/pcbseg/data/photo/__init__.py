"""Real photographs of boards, labelled from their own fabrication files by photo ↔ Gerber registration.

:mod:`.frame` (a side's template and its millimetre frame), :mod:`.coarse` (where the board is),
:mod:`.fine` (block matching and a robust homography), :mod:`.transfer` (labels into the photo),
:mod:`.importer` (``pcbseg-import photos``).
"""
