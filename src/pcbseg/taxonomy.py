"""Label taxonomies: class names, ids, display colours, and a dataset's ``classes.yaml``.

Two built-in taxonomies, looked up by name in one registry:

- ``default``: ``background`` (bare board / soldermask), ``trace``, ``via``, ``pad``,
  ``component``, ``hole`` (drills, mounting holes, screws), ``silkscreen``.
- ``fine``: the same, with ``component`` split into ``resistor``, ``capacitor``, ``inductor``,
  ``transistor``, ``ic`` and ``connector``.

Labelling conventions shared by every data source: a via's drill belongs to ``via`` (a via is one
small object); a through-hole pad's drill and every non-plated drill belong to ``hole``; copper
pours are conductors and belong to ``trace``. ``ignore_index`` (255) marks pixels no loss or
metric looks at.

Example:
    >>> from pcbseg.taxonomy import get_taxonomy
    >>> tax = get_taxonomy("fine")
    >>> tax.id_of("via"), tax.resolve("resistor"), get_taxonomy("default").resolve("resistor")
    (2, 4, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

IGNORE_INDEX = 255

# Colours are RGB, picked to stay distinguishable in overlays on green/blue boards.
_DEFAULT_CLASSES: list[tuple[str, tuple[int, int, int]]] = [
    ("background", (0, 0, 0)),
    ("trace", (255, 140, 0)),
    ("via", (0, 200, 255)),
    ("pad", (255, 230, 0)),
    ("component", (220, 20, 60)),
    ("hole", (120, 60, 220)),
    ("silkscreen", (255, 255, 255)),
]

_COMPONENT_KINDS: list[tuple[str, tuple[int, int, int]]] = [
    ("resistor", (220, 20, 60)),
    ("capacitor", (30, 144, 255)),
    ("inductor", (50, 205, 50)),
    ("transistor", (255, 105, 180)),
    ("ic", (178, 34, 34)),
    ("connector", (160, 82, 45)),
]

# Every fine-grained name folds into a coarser one, so a renderer or importer can speak in the
# finest terms it knows and any taxonomy picks the class it has.
PARENT: dict[str, str] = {name: "component" for name, _ in _COMPONENT_KINDS}


class TaxonomyError(ValueError):
    """A taxonomy or ``classes.yaml`` is malformed."""


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of classes; a class's id is its position."""

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.names:
            raise TaxonomyError(f"taxonomy {self.name!r} has no classes")
        if len(set(self.names)) != len(self.names):
            raise TaxonomyError(f"taxonomy {self.name!r} repeats a class name: {self.names}")
        if len(self.colors) != len(self.names):
            raise TaxonomyError(f"taxonomy {self.name!r}: {len(self.names)} names, {len(self.colors)} colours")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(self.names):
            raise TaxonomyError(
                f"taxonomy {self.name!r}: ignore_index {self.ignore_index} must be in "
                f"[{len(self.names)}, 255] so it never collides with a class id"
            )
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def id_of(self, name: str) -> int:
        """The id of a class this taxonomy has by exactly that name."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"class {name!r} is not in taxonomy {self.name!r} {list(self.names)}") from None

    def resolve(self, kind: str) -> int:
        """The id for ``kind``, falling back to its parent (``resistor`` -> ``component``)."""
        while kind not in self._index:
            if kind not in PARENT:
                raise KeyError(f"{kind!r} has no class in taxonomy {self.name!r} {list(self.names)}")
            kind = PARENT[kind]
        return self._index[kind]

    def palette(self) -> np.ndarray:
        """A 256x3 uint8 RGB lookup table; ignored and unknown ids are grey."""
        lut = np.full((256, 3), 128, dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return lut

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """Map an HxW class-id mask to an HxWx3 RGB image."""
        return self.palette()[mask]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "ignore_index": self.ignore_index,
            "classes": [
                {"id": i, "name": n, "color": list(c)} for i, (n, c) in enumerate(zip(self.names, self.colors, strict=True))
            ],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _build(name: str, classes: list[tuple[str, tuple[int, int, int]]]) -> Taxonomy:
    return Taxonomy(name=name, names=tuple(n for n, _ in classes), colors=tuple(c for _, c in classes))


def _fine_classes() -> list[tuple[str, tuple[int, int, int]]]:
    out: list[tuple[str, tuple[int, int, int]]] = []
    for name, color in _DEFAULT_CLASSES:
        out.extend(_COMPONENT_KINDS if name == "component" else [(name, color)])
    return out


TAXONOMIES: dict[str, Taxonomy] = {
    "default": _build("default", _DEFAULT_CLASSES),
    "fine": _build("fine", _fine_classes()),
}


def get_taxonomy(name: str) -> Taxonomy:
    """A built-in taxonomy by name (``default`` or ``fine``)."""
    try:
        return TAXONOMIES[name]
    except KeyError:
        raise TaxonomyError(f"unknown taxonomy {name!r}; built-in: {sorted(TAXONOMIES)}") from None


def taxonomy_from_names(names: Sequence[str], name: str = "custom", ignore_index: int = IGNORE_INDEX) -> Taxonomy:
    """Classes in the given order, with the built-in display colours where the names match.

    >>> taxonomy_from_names(["background", "resistor"]).colors[1] == get_taxonomy("fine").colors[4]
    True
    """
    known = {n: c for t in TAXONOMIES.values() for n, c in zip(t.names, t.colors, strict=True)}
    rng = np.random.default_rng(0)  # fixed: the same unknown names get the same colours every time
    colours = tuple(known.get(n, tuple(int(v) for v in rng.integers(40, 255, 3))) for n in names)
    return Taxonomy(name=name, names=tuple(names), colors=colours, ignore_index=ignore_index)


def load_classes(path: str | Path) -> Taxonomy:
    """Read a dataset's ``classes.yaml``; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise TaxonomyError(f"{path}: classes file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise TaxonomyError(f"{path}: not valid YAML{where} ({getattr(e, 'problem', None) or e}); expected a 'classes' "
                            "list of {id, name, color} entries (see README, 'Datasets')") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list):
        raise TaxonomyError(f"{path}: expected a mapping with a 'classes' list")
    entries = doc["classes"]
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    for pos, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise TaxonomyError(f"{path}: class #{pos} needs at least a 'name'")
        if entry.get("id", pos) != pos:
            raise TaxonomyError(f"{path}: class {entry['name']!r} has id {entry['id']}, expected {pos} (ids run 0..N-1 in order)")
        color = entry.get("color", [128, 128, 128])
        if not (isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise TaxonomyError(f"{path}: class {entry['name']!r} colour must be [r, g, b] in 0..255, got {color!r}")
        names.append(str(entry["name"]))
        colors.append((color[0], color[1], color[2]))
    try:
        return Taxonomy(
            name=str(doc.get("name", path.parent.name)),
            names=tuple(names),
            colors=tuple(colors),
            ignore_index=int(doc.get("ignore_index", IGNORE_INDEX)),
        )
    except TaxonomyError as e:
        raise TaxonomyError(f"{path}: {e}") from None
