"""Find and read a board's fabrication files: which file is which layer, and gerbonara with its gaps filled.

Layers are identified by their X2 ``.FileFunction`` attribute first (``%TF...%`` or the comment
form ``G04 #@! TF...``), then by the usual file names of KiCad, EAGLE, Altium and EasyEDA.

Gaps in gerbonara 1.5 that are filled here (all met on the boards in ``../shared/data/gerbers``):

- the comment form ``G04 #@! TA.AperFunction,...*`` (KiCad 5/6, Altium) is ignored by gerbonara:
  it is rewritten into the ``%TA...*%`` form before parsing;
- ``Region`` objects carry no attributes: the aperture and object attributes in force at ``G36``
  are attached to the regions of that block;
- KiCad 6+ drill files without decimal points need the number format from ``;FORMAT={3:3/...}``
  (Altium: ``;FILE_FORMAT=4:4``); drill tool functions (``; #@! TA.AperFunction,...,ViaDrill``)
  are read from the comments;
- ``G85`` slots are rewritten as routed slots (``M15``/``M16``);
- Fritzing's obsolete rectangle apertures with a rectangular hole (``%ADD10R,wXhXhwXhh*%``) lose
  the hole, which is what they are meant to draw (solid rectangles);
- an Excellon file without a number format (EAGLE's ``.XLN``) takes it from the EAGLE drill-station
  file beside it (``.dri``: "coordinate format 2.4 inch"); Fritzing's "non-plated holes start at
  T1 / plated holes start at T100" comments say which tools are plated;
- outline files named ``.gm``, ``.gml``, ``.gm1`` (and ``.gko``) are recognised.

A board may be given as its folder, as the ``.zip`` a fab house takes, or as a folder whose fab
files sit one or two folders down (``gerber/``, ``Gerber_Files/``) or in a single ``.zip`` inside it.

Example:
    >>> rewrite_comment_attributes("G04 #@! TA.AperFunction,ViaPad*\\nD10*")
    '%TA.AperFunction,ViaPad*%\\nD10*'
"""

from __future__ import annotations

import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from gerbonara import graphic_objects as go
from gerbonara.cam import FileSettings
from gerbonara.excellon import ExcellonParser
from gerbonara.rs274x import GerberFile, GerberParser
from gerbonara.utils import MM, Inch

SIDES = ("top", "bottom")
# (side, kind) by file-name rule, checked in order; side None = both/none.
_NAME_RULES: list[tuple[str, str | None, str]] = [
    (r"(\.gtl$|[-_]f[._]cu\b|copper_top|toplayer|\.cmp$|\btop\.gbr$)", "top", "copper"),
    (r"(\.gbl$|[-_]b[._]cu\b|copper_bottom|bottomlayer|\.sol$|\bbottom\.gbr$)", "bottom", "copper"),
    (r"(\.gts$|[-_]f[._]mask\b|soldermask_top|topsoldermask|\.stc$)", "top", "mask"),
    (r"(\.gbs$|[-_]b[._]mask\b|soldermask_bottom|bottomsoldermask|\.sts$)", "bottom", "mask"),
    (r"(\.gto$|[-_]f[._]silks?\b|[-_]f[._]silkscreen\b|silkscreen_top|topsilk|\.plc$)", "top", "silk"),
    (r"(\.gbo$|[-_]b[._]silks?\b|[-_]b[._]silkscreen\b|silkscreen_bottom|bottomsilk|\.pls$)", "bottom", "silk"),
    (r"(\.gtp$|[-_]f[._]paste\b|solderpaste_top|toppaste|\.crc$)", "top", "paste"),
    (r"(\.gbp$|[-_]b[._]paste\b|solderpaste_bottom|bottompaste|\.crs$)", "bottom", "paste"),
    (r"(\.gm\d*$|\.gml$|\.gko$|edge[._]cuts|\bprofile\b|outline|boardoutline|\.dim$)", None, "outline"),
]
_DRILL_EXT = (".drl", ".xln", ".txt", ".exc", ".drd", ".tap", ".nc", ".xnc")
_FUNCTION_KIND = {"copper": "copper", "soldermask": "mask", "legend": "silk", "paste": "paste", "profile": "outline"}


class GerberError(ValueError):
    """A fabrication file cannot be used; the message names the file."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class DrillFile:
    path: Path
    plated: bool | None  # None: the file mixes both or does not say
    objects: list
    functions: dict[int, str] = field(default_factory=dict)  # tool number -> X2 drill function
    tool_of: dict[int, int] = field(default_factory=dict)  # id(tool object) -> tool number
    plated_tools: dict[int, bool] = field(default_factory=dict)  # tool number -> plated, when the file says per tool


@dataclass
class BoardFiles:
    """The files of one board, by side and kind; ``identified_by`` says how each was recognised."""

    root: Path
    layers: dict[tuple[str | None, str], Path] = field(default_factory=dict)  # (side, kind) -> file
    drills: list[Path] = field(default_factory=list)
    identified_by: dict[str, str] = field(default_factory=dict)  # file name -> "X2" | "name"
    unpacked: tempfile.TemporaryDirectory | None = field(default=None, repr=False)  # a .zip's files live here

    def get(self, side: str | None, kind: str) -> Path | None:
        return self.layers.get((side, kind))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as e:
        raise GerberError(path, f"cannot be read ({e})") from e


def _file_function(text: str) -> list[str] | None:
    m = re.search(r"(?:%|#@! )TF\.FileFunction,([^*%\r\n]*)", text[:20000])
    return m.group(1).split(",") if m else None


def identify(directory: str | Path) -> BoardFiles:
    """Sort the files of a board (folder or .zip) into layers (X2 attributes first, then names)."""
    root = Path(directory)
    board = BoardFiles(root)
    folder = _fab_folder(root, board)
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        head = _read_text(path)[:20000]
        kind = _fab_kind(head, path)
        if kind == "drill":
            board.drills.append(path)
            board.identified_by[path.name] = "X2" if _file_function(head) else "name"
            continue
        if kind is None:
            continue  # not a Gerber file (job files, READMEs, ...)
        key = None
        name = path.name.lower()
        ff = _file_function(head)
        if ff and ff[0].lower() in _FUNCTION_KIND:
            kind = _FUNCTION_KIND[ff[0].lower()]
            side = None
            if kind == "copper":
                side = {"top": "top", "bot": "bottom"}.get(ff[2].lower()[:3] if len(ff) > 2 else "", f"inner:{ff[1]}")
            elif kind != "outline" and len(ff) > 1:
                side = {"top": "top", "bot": "bottom"}.get(ff[1].lower()[:3])
            key, how = (side, kind), "X2"
        else:
            for pattern, side, kind in _NAME_RULES:
                if re.search(pattern, name):
                    key, how = (side, kind), "name"
                    break
        if key is not None and key not in board.layers:
            board.layers[key] = path
            board.identified_by[path.name] = how
    if not any(board.get(s, "copper") for s in SIDES):
        raise GerberError(root, "no recognisable top or bottom copper layer (by X2 .FileFunction or by file name)")
    return board


def _fab_kind(head: str, path: Path) -> str | None:
    """``drill``, ``gerber`` or None (not a fabrication file) from a file's first characters."""
    if head.lstrip().startswith("M48") or ("M48" in head[:2000] and path.suffix.lower() in _DRILL_EXT):
        return "drill"
    return "gerber" if re.search(r"%FS|%MO|G04|%ADD", head[:5000]) else None


_NOT_FAB = (".zip", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".pdf", ".json", ".md", ".csv")


def _head(path: Path, n: int = 5000) -> str:
    try:
        with path.open("rb") as f:
            return f.read(n).decode(errors="replace")
    except OSError as e:
        raise GerberError(path, f"cannot be read ({e})") from e


def _holds_fab_files(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() not in _NOT_FAB and _fab_kind(_head(p), p) for p in folder.iterdir())


_MAX_UNZIPPED = 2 << 30  # a fab zip is megabytes; more than this is not one


def _unzip(path: Path, board: BoardFiles) -> Path:
    """Extract a .zip of fab files into a temporary folder the BoardFiles keeps alive."""
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            if sum(m.file_size for m in members) > _MAX_UNZIPPED:
                raise GerberError(path, f"unpacks to more than {_MAX_UNZIPPED >> 30} GiB: not a board's fab files")
            board.unpacked = tempfile.TemporaryDirectory(prefix="pcbseg-fab-")
            dest = Path(board.unpacked.name)
            for m in members:
                parts = Path(m.filename).parts
                if Path(m.filename).is_absolute() or ".." in parts:
                    continue  # a path that would land outside the folder
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(m))
    except (zipfile.BadZipFile, OSError) as e:
        raise GerberError(path, f"cannot be unpacked ({e})") from None
    return dest


def _fab_folder(root: Path, board: BoardFiles, depth: int = 0) -> Path:
    """The folder that holds the board's fab files: ``root``, a .zip unpacked, or the one subfolder (or
    .zip inside) that has them, two levels down at most."""
    if root.is_file() and zipfile.is_zipfile(root):
        return _fab_folder(_unzip(root, board), board, depth + 1)
    if not root.is_dir():
        raise GerberError(board.root, "not a folder or a .zip of fabrication files")
    if _holds_fab_files(root):
        return root
    inner = sorted(p for p in root.iterdir() if (p.is_dir() and not p.name.startswith(("__MACOSX", "."))))
    found = [p for p in inner if _holds_fab_files(p)] if depth < 2 else []
    zips = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".zip")
    if len(found) == 1 and not zips:
        return found[0]
    if zips and board.unpacked is not None:
        raise GerberError(board.root, "a .zip inside a .zip: unpack the outer one")
    if len(zips) == 1 and not found:
        return _fab_folder(zips[0], board, depth)
    if found or zips:
        names = ", ".join(p.name for p in found + zips)
        raise GerberError(board.root, f"fab files are in more than one place ({names}): give the board's own folder")
    if depth < 2:
        for sub in inner:  # e.g. board/outputs/gerber/
            deeper = [p for p in sub.iterdir() if p.is_dir() and _holds_fab_files(p)]
            if len(deeper) == 1:
                return deeper[0]
    return root  # nothing anywhere: identify() says which layer is missing


# --- Gerber ---------------------------------------------------------------------------------------

_COMMENT_ATTRIBUTE = re.compile(r"G04 #@! (T[AFOD][^*\r\n]*)\*")


def rewrite_comment_attributes(text: str) -> str:
    """``G04 #@! TA.x,y*`` -> ``%TA.x,y*%``: the comment form KiCad 5/6 and Altium write."""
    return _COMMENT_ATTRIBUTE.sub(r"%\1*%", text)


class _AttributedParser(GerberParser):
    """gerbonara's parser, but regions keep the aperture and object attributes in force at G36."""

    def _parse_region_start(self, match):
        super()._parse_region_start(match)
        self._region_mark = len(self.target.objects)

    def _parse_region_end(self, match):
        super()._parse_region_end(match)
        attrs = {**dict(self.aperture_attrs), **self.graphics_state.object_attrs}
        for obj in self.target.objects[getattr(self, "_region_mark", len(self.target.objects)):]:
            if isinstance(obj, go.Region):
                # Region.__init__ never sets attrs: the class-level dataclass Field shows through
                obj.attrs = {**attrs, **(obj.__dict__.get("attrs") or {})}


_RECT_WITH_HOLE = re.compile(r"%ADD(\d+)([RO]),([-\d.]+)X([-\d.]+)X[-\d.]+X[-\d.]+\*%")


def rewrite_rect_holes(text: str) -> str:
    """``%ADD10R,wXhXaXb*%`` (an obsolete rectangular hole, Fritzing) -> ``%ADD10R,wXh*%``.

    >>> rewrite_rect_holes("%ADD10R,0.041339X0.096457X0.021654X0.076772*%")
    '%ADD10R,0.041339X0.096457*%'
    """
    return _RECT_WITH_HOLE.sub(r"%ADD\1\2,\3X\4*%", text)


def read_gerber(path: str | Path) -> GerberFile:
    """Parse an RS-274X / X2 file, filling the gaps listed in the module docstring."""
    path = Path(path)
    text = rewrite_rect_holes(rewrite_comment_attributes(_read_text(path)))
    obj = GerberFile()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _AttributedParser(obj).parse(text, filename=str(path))
    except Exception as e:  # gerbonara raises SyntaxError, KeyError, ValueError... on bad files
        reason = str(e).replace(str(path), "").strip(" :") or type(e).__name__
        if "macro" in reason.lower() or isinstance(e, KeyError):
            reason = f"unsupported or unknown aperture macro ({reason})"
        raise GerberError(path, f"cannot be parsed as Gerber: {reason}") from e
    return obj


def _attrs(obj) -> dict:
    attrs = obj.__dict__.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def aperture_function(obj) -> str | None:
    """The X2 aperture function of a graphic object (``ViaPad``, ``SMDPad``, ``Conductor``...)."""
    for attrs in (getattr(getattr(obj, "aperture", None), "attrs", None), _attrs(obj)):
        if attrs:
            value = dict(attrs).get(".AperFunction")
            if value:
                return value[0]
    return None


def component_of(obj) -> str | None:
    """The reference designator of a pad (``.C``, or the first field of ``.P``), if the file says."""
    attrs = _attrs(obj)
    value = attrs.get(".C") or attrs.get(".P")
    return value[0] if value else None


# --- Excellon -------------------------------------------------------------------------------------

_FORMAT = re.compile(r";\s*FORMAT=\{(?P<i>[\d-]+):(?P<f>[\d-]+)/\s*\w+\s*/\s*(?P<unit>\w+)\s*/\s*(?P<zeros>[^}]*)\}")
_FILE_FORMAT = re.compile(r";\s*FILE_FORMAT=(\d+):(\d+)")
_G85 = re.compile(r"^(?P<a>X[-+\d.]+Y[-+\d.]+)G85(?P<b>X[-+\d.]+Y[-+\d.]+)\s*$", re.M)
_TOOL_FUNCTION = re.compile(r";\s*#@!\s*TA\.AperFunction,([^\r\n*]*)\s*[\r\n]+\s*T(\d+)", re.M)


_EAGLE_DRI = re.compile(r"coordinate format\s+(\d+)\.(\d+)\s+(inch|mm)", re.I)
_FRITZING_PLATED = re.compile(r";\s*THROUGH \(PLATED\) HOLES START AT T(\d+)", re.I)


def eagle_drill_settings(directory: Path) -> FileSettings | None:
    """The number format stated by an EAGLE drill-station file (``*.dri``) in ``directory``."""
    for dri in sorted(directory.glob("*.[dD][rR][iI]")):
        if m := _EAGLE_DRI.search(_read_text(dri)):
            return FileSettings(unit=Inch if m[3].lower() == "inch" else MM, zeros="leading",
                                number_format=(int(m[1]), int(m[2])))
    return None


def drill_settings(text: str) -> FileSettings | None:
    """The number format of a drill file, from KiCad's ``;FORMAT={...}`` or Altium's ``;FILE_FORMAT=``."""
    if m := _FORMAT.search(text):
        unit = MM if "metric" in m["unit"].lower() else Inch
        if not m["i"].isdigit():  # "-:-" = decimal points are written
            return FileSettings(unit=unit, zeros=None, number_format=(None, None))
        zeros = "trailing" if "trailing" in m["zeros"].lower() else "leading"
        return FileSettings(unit=unit, zeros=zeros, number_format=(int(m["i"]), int(m["f"])))
    if m := _FILE_FORMAT.search(text):
        unit = Inch if re.search(r"^INCH", text, re.M) else MM
        zeros = "trailing" if re.search(r",\s*TZ", text) else "leading"
        return FileSettings(unit=unit, zeros=zeros, number_format=(int(m[1]), int(m[2])))
    return None


def rewrite_g85_slots(text: str) -> str:
    """``X..Y..G85X..Y..`` (a slot in one line) -> a routed slot gerbonara understands."""
    return _G85.sub(lambda m: f"G00{m['a']}\nM15\nG01{m['b']}\nM16\nG05", text)


def read_drill(path: str | Path) -> DrillFile:
    path = Path(path)
    text = _read_text(path)
    functions = {int(t): f.split(",")[-1].strip() for f, t in _TOOL_FUNCTION.findall(text)}
    ff = _file_function(text)
    plated = None
    if ff:
        plated = {"plated": True, "nonplated": False}.get(ff[0].lower())
    elif re.search(r"npth|non[-_ ]?plated", path.name, re.I) or re.search(r";\s*TYPE=NON_?PLATED", text, re.I):
        plated = False
    elif re.search(r"(?<!n)pth|(?<!non)plated", path.name, re.I) or re.search(r";\s*TYPE=PLATED", text, re.I):
        plated = True
    settings = drill_settings(text)
    if settings is None and not re.search(r"^\s*(METRIC|INCH)\s*,\s*[LT]Z", text, re.M | re.I):
        settings = eagle_drill_settings(path.parent)
    plated_tools = {}
    if m := _FRITZING_PLATED.search(text):
        first_plated = int(m[1])
        plated_tools = {int(t): int(t) >= first_plated for t in re.findall(r"^T(\d+)C", text, re.M)}
    parser = ExcellonParser(settings)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser.do_parse(rewrite_g85_slots(text), filename=str(path))
    except Exception as e:
        raise GerberError(path, f"cannot be parsed as an Excellon drill file: {e}") from e
    tool_of = {id(tool): number for number, tool in parser.tools.items()}
    return DrillFile(path, plated, parser.objects, functions, tool_of, plated_tools)
