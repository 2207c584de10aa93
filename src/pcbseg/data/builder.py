"""Write a new dataset in the canonical layout, all or nothing: the shared back end of every importer.

Everything goes into a hidden temporary folder beside ``out`` and is moved into place only when the
import has finished, so a failed or interrupted import leaves no half-written dataset, and an
existing non-empty ``out`` is never touched unless ``overwrite`` is asked for.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from pcbseg.taxonomy import taxonomy_from_names
    >>> out = Path(tempfile.mkdtemp()) / "mine"
    >>> with DatasetBuilder(out, taxonomy_from_names(["background", "pad"]), source="doctest") as b:
    ...     for i in range(4):
    ...         _ = b.add(f"board{i}", np.zeros((8, 8, 3), np.uint8), np.eye(8, dtype=np.uint8))
    ...     result = b.finish(valid_pct=0.25)
    >>> len(result.imported), sorted(p.name for p in out.iterdir())
    (4, ['classes.yaml', 'images', 'import_report.md', 'masks', 'splits.csv'])
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcbseg.data.layout import DatasetLayout, image_size, read_image, write_image, write_mask
from pcbseg.data.leakage import Fingerprint, check_dataset_leaks, duplicate_groups, leak_table
from pcbseg.data.splits import SPLIT_NAMES, SplitRow, assign_splits, group_of, leaking_groups, write_splits
from pcbseg.taxonomy import Taxonomy

# Group = the name with augmentation suffixes removed, so augmented copies of one photo share a group.
# Handles Roboflow's ``<name>_<ext>.rf.<hash>`` and the usual suffixes (``_rot90``, ``_flip``,
# ``_bright``, ``_aug3`` ...), in any order and number.
_AUGMENT_WORDS = (
    r"rot\d*|rotated\d*|flip[hv]?|[hv]flip|mirror\w*|bright\w*|dark\w*|contrast\w*|blur\w*|noise\w*|"
    r"crop\w*|zoom\w*|scale\w*|shear\w*|gamma\w*|hue\w*|sat\w*|jitter\w*|aug\w*|copy\d*|dup\d*"
)
# Suffixes may follow the hash too (``<name>_jpg.rf.<hash>_rot90``, a copy augmented after export).
DEFAULT_GROUP_PATTERN = (
    rf"(?i)^(.+?)(?:[_-](?:{_AUGMENT_WORDS}))*(?:_(?:jpe?g|png|bmp|tiff?|webp))?(?:\.rf\.[0-9a-f]+)?"
    rf"(?:[_-](?:{_AUGMENT_WORDS}))*$"
)


@dataclass
class ImportResult:
    root: Path
    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    warnings: list[str] = field(default_factory=list)
    rows: list[SplitRow] = field(default_factory=list)
    dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (image, shape, why): shapes not in any mask


class DatasetBuilder:
    """Collect images and masks, then :meth:`finish` writes classes, splits and ``import_report.md``."""

    def __init__(self, out: str | Path, taxonomy: Taxonomy, source: str, overwrite: bool = False, strict: bool = False):
        self.out, self.taxonomy, self.source, self.overwrite = Path(out), taxonomy, source, overwrite
        self.strict = strict  # a dropped shape makes the whole import fail
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())) and not overwrite:
            raise FileExistsError(f"{self.out}: not empty; pass --overwrite to replace it, or choose another --out")
        self.result = ImportResult(self.out)
        self.notes: list[str] = []  # lines under the title
        self.sections: list[str] = []  # markdown after the class table
        self._splits: dict[str, str | None] = {}
        self._groups: dict[str, str | None] = {}
        self._pixels: dict[str, np.ndarray] = {s: np.zeros(256, np.int64) for s in SPLIT_NAMES}
        self._presence: dict[str, np.ndarray] = {s: np.zeros(256, np.int64) for s in SPLIT_NAMES}
        self._per_image: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.tmp: Path | None = None

    def __enter__(self) -> DatasetBuilder:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        self.layout = DatasetLayout(self.tmp)
        self.layout.images.mkdir()
        self.layout.masks.mkdir()
        return self

    def __exit__(self, *exc) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def skip(self, file: str | Path, why: str) -> None:
        self.result.skipped.append((str(file), why))

    def warn(self, message: str) -> None:
        """Record a warning; the report lists it and the CLI prints it (once)."""
        self.result.warnings.append(message)

    def drop(self, image: str | Path, shape: str, why: str) -> None:
        """Record a shape that lands in no mask: the report and the terminal name it; ``strict`` refuses the import."""
        self.result.dropped.append((str(image), shape, why))

    def add(self, image_id: str, image: Path | np.ndarray, mask: np.ndarray, split: str | None = None,
            group: str | None = None, source_file: str | Path | None = None, image_ext: str = ".png") -> bool:
        """Add one image (a file to copy, or an RGB array to write) with its class-id mask.

        Returns False, and records why, when the pair cannot be used.
        """
        where = source_file or image
        if image_id in self._splits:
            self.skip(where, f"another image is already named {image_id!r}")
            return False
        if isinstance(image, Path):
            size = image_size(image)  # as training will read it: EXIF rotation applied
            if size is None:
                self.skip(image, "cannot be read as an image")
                return False
        else:
            size = image.shape[:2]
        if mask.shape != size:
            self.skip(where, f"mask {mask.shape[::-1]} and image {size[::-1]} differ in size")
            return False
        tax = self.taxonomy
        bad = sorted(set(np.unique(mask).tolist()) - set(range(tax.num_classes)) - {tax.ignore_index})
        if bad:
            self.skip(where, f"class ids {bad} beyond the {tax.num_classes} classes")
            return False
        if split is not None and split not in SPLIT_NAMES:
            raise ValueError(f"split {split!r} is not one of {SPLIT_NAMES}")
        if isinstance(image, Path):
            shutil.copy2(image, self.layout.images / f"{image_id}{image.suffix.lower()}")
        else:
            write_image(self.layout.images / f"{image_id}{image_ext}", image)
        write_mask(self.layout.mask_path(image_id), mask)
        counts = np.bincount(mask.ravel(), minlength=256)
        self._per_image[image_id] = (counts, counts > 0)
        self._splits[image_id], self._groups[image_id] = split, group
        self.result.imported.append(image_id)
        return True

    def finish(self, valid_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42,
               group_pattern: str | None = DEFAULT_GROUP_PATTERN, check_pixels: bool = True,
               group_duplicates: bool = False) -> ImportResult:
        """Write ``classes.yaml``, ``splits.csv`` and the report, and move the dataset into place.

        Images added with a ``split`` keep it (an export's own split); otherwise the holdout is drawn
        by group. A kept split is checked for leaks: a group on both sides, and (``check_pixels``)
        near-duplicate pictures on both sides (:mod:`pcbseg.data.leakage`). ``group_duplicates``
        merges the groups of near-duplicate pictures before the holdout is drawn.
        """
        assert self.tmp is not None, "use DatasetBuilder as a context manager"
        res = self.result
        if self.strict and res.dropped:
            shown = "; ".join(f"{i}: {s}: {why}" for i, s, why in res.dropped[:5])
            more = f" (and {len(res.dropped) - 5} more)" if len(res.dropped) > 5 else ""
            raise ValueError(f"{self.source}: --strict: {len(res.dropped)} shape(s) would be dropped: {shown}{more}; "
                             "nothing was written")
        if not res.imported:
            why = "; ".join(f"{f}: {reason}" for f, reason in res.skipped[:3]) + (" ..." if len(res.skipped) > 3 else "")
            raise ValueError(f"{self.source}: no image could be imported ({len(res.skipped)} skipped: {why})")
        self.taxonomy.save(self.layout.classes)
        given = {i: s for i, s in self._splits.items() if s is not None}
        if given and len(given) != len(self._splits):
            raise ValueError(f"{self.source}: some images have a split and some do not")

        groups = {i: self._groups[i] or group_of(i, group_pattern) for i in sorted(res.imported)}
        if group_duplicates:
            files, _ = self.layout.image_files()
            merged = duplicate_groups({i: Fingerprint.of(read_image(files[i])) for i in groups}, groups)
            n_before, n_after = len(set(groups.values())), len(set(merged.values()))
            groups = merged
            self.notes.append(f"Groups: {n_before} by name, {n_after} after merging near-duplicate pictures.")
        if given:
            res.rows = [SplitRow(i, given[i], g) for i, g in groups.items()]
            leaks = leaking_groups(res.rows)
            if leaks:
                shown = ", ".join(f"{g} ({'/'.join(sorted(s))})" for g, s in sorted(leaks.items())[:5])
                self.warn(f"the export's own split leaks: {len(leaks)} group(s) sit in more than one split, e.g. {shown}")
            if check_pixels:
                dupes = check_dataset_leaks(self.tmp, res.rows)
                if dupes:
                    self.warn(f"the export's own split leaks: {len(dupes)} pair(s) of near-duplicate images sit in "
                              "different splits (listed in import_report.md, 'Near-duplicates across splits')")
                    self.sections += ["## Near-duplicates across splits", "", *leak_table(dupes)]
        else:
            by_group = assign_splits(groups.values(), valid_pct, test_pct, seed)
            res.rows = [SplitRow(i, by_group[g], g) for i, g in groups.items()]
        write_splits(self.layout.splits, res.rows)
        for r in res.rows:
            counts, present = self._per_image[r.id]
            self._pixels[r.split] += counts
            self._presence[r.split] += present
        self._write_report()
        if self.out.exists():
            if self.out.is_dir() and any(self.out.iterdir()):
                shutil.rmtree(self.out)
            else:
                self.out.rmdir() if self.out.is_dir() else self.out.unlink()
        self.tmp.rename(self.out)
        self.tmp = None
        return res

    def _write_report(self) -> None:
        res, tax = self.result, self.taxonomy
        splits = [s for s in SPLIT_NAMES if any(r.split == s for r in res.rows)]
        n_img = {s: sum(r.split == s for r in res.rows) for s in splits}
        n_grp = {s: len({r.group for r in res.rows if r.split == s}) for s in splits}
        lines = [f"# Import of {self.source}", "",
                 f"{len(res.imported)} images imported, {len(res.skipped)} skipped, {len(res.dropped)} shape(s) dropped, "
                 f"{len(res.warnings)} warning(s).", ""]
        lines += self.notes + ([""] if self.notes else [])
        lines += ["## Splits", "", "| split | images | groups |", "|---|---|---|"]
        lines += [f"| {s} | {n_img[s]} | {n_grp[s]} |" for s in splits]
        lines += ["", "## Classes", "", "Pixels (share of labelled pixels) and images showing the class, per split.", "",
                  "| class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
        totals = {s: max(int(self._pixels[s][: tax.num_classes].sum()), 1) for s in splits}
        for i, name in enumerate(tax.names):
            cells = [f"{int(self._pixels[s][i])} ({100 * self._pixels[s][i] / totals[s]:.2f}%), {int(self._presence[s][i])} img"
                     for s in splits]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        ignored = {s: int(self._pixels[s][tax.ignore_index]) for s in splits}
        if any(ignored.values()):
            lines.append("| (ignored) | " + " | ".join(str(ignored[s]) for s in splits) + " |")
        if self.sections:
            lines += ["", *self.sections]
        if res.warnings:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in res.warnings]
        if res.dropped:
            lines += ["", "## Dropped shapes", "", "Shapes that are in no mask (their pixels are background unless "
                      "another shape covers them).", "", "| image | shape | why |", "|---|---|---|"]
            lines += [f"| `{i}` | {s} | {why} |" for i, s, why in res.dropped]
        if res.skipped:
            lines += ["", "## Skipped", ""] + [f"- `{f}`: {why}" for f, why in res.skipped]
        (self.tmp / "import_report.md").write_text("\n".join(lines) + "\n")
