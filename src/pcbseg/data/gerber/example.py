"""A tiny hand-written two-layer board (15 x 10 mm) in KiCad 6 style, for examples and tests.

It exercises what real files need: X2 attributes in both forms (``%TA...%`` and the comment form
``G04 #@! TA...``), a region pad whose function is set at ``G36``, ``.C`` component attributes,
a KiCad 6 drill file without decimal points, tool functions in drill comments, and a ``G85`` slot.

Contents: one 0805-like resistor R1 (two SMD pads), a via, a through-hole pad, one region pad, two
traces, soldermask openings, a silkscreen line, an outline.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> sorted(p.name for p in write_example_board(Path(tempfile.mkdtemp()) / "demo").iterdir())[:3]
    ['demo-B_Cu.gbr', 'demo-B_Mask.gbr', 'demo-Edge_Cuts.gbr']
"""

from __future__ import annotations

from pathlib import Path

_HEADER = "%TF.GenerationSoftware,pcbseg,example*%\n%TF.FileFunction,{function}*%\n%FSLAX46Y46*%\n%MOMM*%\n%LPD*%\n"

_F_CU = """G04 #@! TA.AperFunction,SMDPad,CuDef*
%ADD10R,1.000000X1.400000*%
%TD*%
%TA.AperFunction,ViaPad*%
%ADD11C,0.800000*%
%TD*%
%TA.AperFunction,Conductor*%
%ADD12C,0.250000*%
%TD*%
%TA.AperFunction,ComponentPad*%
%ADD13C,1.800000*%
%TD*%
D10*
%TO.C,R1*%
%TO.P,R1,1*%
X5000000Y5000000D03*
%TO.P,R1,2*%
X6900000Y5000000D03*
%TD*%
D11*
X10000000Y5000000D03*
D13*
%TO.P,J1,1*%
X3000000Y8000000D03*
%TD*%
D12*
X6900000Y5000000D02*
X10000000Y5000000D01*
X10000000Y8000000D01*
X3000000Y8000000D02*
X5000000Y5000000D01*
%TA.AperFunction,SMDPad,CuDef*%
G36*
X12000000Y2000000D02*
X13000000Y2000000D01*
X13000000Y3000000D01*
X12000000Y3000000D01*
X12000000Y2000000D01*
G37*
%TD*%
M02*
"""

_B_CU = """%TA.AperFunction,ViaPad*%
%ADD11C,0.800000*%
%TD*%
%TA.AperFunction,ComponentPad*%
%ADD13C,1.800000*%
%TD*%
%TA.AperFunction,Conductor*%
%ADD12C,0.400000*%
%TD*%
D11*
X10000000Y5000000D03*
D13*
X3000000Y8000000D03*
D12*
X10000000Y5000000D02*
X10000000Y2000000D01*
M02*
"""

_F_MASK = """%ADD10R,1.100000X1.500000*%
%ADD13C,1.900000*%
%ADD14R,1.100000X1.100000*%
D10*
X5000000Y5000000D03*
X6900000Y5000000D03*
D13*
X3000000Y8000000D03*
D14*
X12500000Y2500000D03*
M02*
"""

_B_MASK = """%ADD13C,1.900000*%
D13*
X3000000Y8000000D03*
M02*
"""

_F_SILK = """%ADD20C,0.150000*%
D20*
X4000000Y6200000D02*
X8000000Y6200000D01*
M02*
"""

_EDGE = """%ADD30C,0.050000*%
D30*
X0Y0D02*
X15000000Y0D01*
X15000000Y10000000D01*
X0Y10000000D01*
X0Y0D01*
M02*
"""

_PTH = """M48
; DRILL file {KiCad 6.0.11} date Sat Jan 1 00:00:00 2022
; FORMAT={3:3/ absolute / metric / suppress leading zeros}
; #@! TF.FileFunction,Plated,1,2,PTH
FMAT,2
METRIC,TZ
; #@! TA.AperFunction,Plated,PTH,ViaDrill
T1C0.400
; #@! TA.AperFunction,Plated,PTH,ComponentDrill
T2C1.000
%
G90
G05
T1
X10000Y5000
T2
X3000Y8000
M30
"""

_NPTH = """M48
; FORMAT={-:-/ absolute / metric / decimal}
; #@! TF.FileFunction,NonPlated,1,2,NPTH
FMAT,2
METRIC
T1C1.000
%
G90
G05
T1
X12.5Y8.0G85X13.5Y8.0
M30
"""


def write_example_board(folder: str | Path) -> Path:
    """Write the board's files into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = folder.name
    gerbers = {
        "F_Cu": ("Copper,L1,Top", _F_CU), "B_Cu": ("Copper,L2,Bot", _B_CU),
        "F_Mask": ("Soldermask,Top", _F_MASK), "B_Mask": ("Soldermask,Bot", _B_MASK),
        "F_Silkscreen": ("Legend,Top", _F_SILK), "Edge_Cuts": ("Profile,NP", _EDGE),
    }
    for layer, (function, body) in gerbers.items():
        (folder / f"{name}-{layer}.gbr").write_text(_HEADER.format(function=function) + body)
    (folder / f"{name}-PTH.drl").write_text(_PTH)
    (folder / f"{name}-NPTH.drl").write_text(_NPTH)
    return folder
