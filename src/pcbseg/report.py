"""Reports people would rather look at than read: Markdown plus a self-contained HTML page.

Plots are matplotlib PNGs: a row-normalised confusion matrix, per-class IoU bars, and fast.ai-style
``show_results`` / top-losses grids (image, ground truth, prediction). The HTML embeds every image,
so the single file can be mailed or opened anywhere.

Example:
    >>> import numpy as np
    >>> png = confusion_png(np.array([[5, 1], [0, 4]]), ["bg", "fg"])
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pcbseg.taxonomy import Taxonomy


@dataclass
class Sample:
    """One image for a results grid (already downscaled for display)."""

    id: str
    image: np.ndarray  # HxWx3 uint8 RGB
    target: np.ndarray  # HxW class ids
    pred: np.ndarray  # HxW class ids
    miou: float


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def confusion_png(cm: np.ndarray, names: Sequence[str]) -> bytes:
    """Row-normalised confusion matrix: each row (true class) sums to 1."""
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.7 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("Confusion matrix (row-normalised)")
    return _png(fig)


def iou_bars_png(per_class: dict[str, dict], taxonomy: Taxonomy | None = None) -> bytes:
    names = list(per_class)
    iou = [per_class[n]["iou"] if per_class[n]["iou"] is not None else 0.0 for n in names]
    biou = [per_class[n].get("boundary_iou") or 0.0 for n in names]
    colours = [np.array(taxonomy.colors[taxonomy.id_of(n)]) / 255 if taxonomy and n in taxonomy.names else "C0" for n in names]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(names), 3.6))
    x = np.arange(len(names))
    ax.bar(x - 0.2, iou, 0.4, color=colours, edgecolor="0.3", label="IoU")
    ax.bar(x + 0.2, biou, 0.4, color="0.75", edgecolor="0.3", label="boundary IoU")
    for xi, v in zip(x, iou, strict=True):
        ax.text(xi - 0.2, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Per-class IoU")
    return _png(fig)


def _overlay(image: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy, alpha: float = 0.55) -> np.ndarray:
    colours = taxonomy.colorize(mask).astype(np.float32)
    out = image.astype(np.float32) * (1 - alpha) + colours * alpha
    if "background" in taxonomy.names:
        bg = (mask == taxonomy.id_of("background"))[..., None]
        out = np.where(bg, image.astype(np.float32), out)
    return out.astype(np.uint8)


def results_png(samples: Sequence[Sample], taxonomy: Taxonomy, title: str) -> bytes:
    """fast.ai's show_results: one row per image: photo, ground truth, prediction, and where they differ."""
    rows = max(1, len(samples))
    fig, axes = plt.subplots(rows, 4, figsize=(11, 2.8 * rows), squeeze=False)
    for r, s in enumerate(samples):
        wrong = (s.pred != s.target) & (s.target != taxonomy.ignore_index)
        panels = [(s.image, s.id), (_overlay(s.image, s.target, taxonomy), "ground truth"),
                  (_overlay(s.image, s.pred, taxonomy), f"prediction (mIoU {s.miou:.2f})"), (wrong, "errors")]
        for ax, (img, label) in zip(axes[r], panels, strict=True):
            ax.imshow(img, cmap="Reds" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.set_axis_off()
    if not samples:
        for ax in axes[0]:
            ax.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def _fmt(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def metrics_table(metrics: dict) -> list[list[str]]:
    header = ["class", "IoU", "Dice", "precision", "recall", "boundary IoU", "pixel share"]
    rows = [header]
    for name, m in metrics["per_class"].items():
        rows.append([name, _fmt(m["iou"]), _fmt(m["dice"]), _fmt(m["precision"]), _fmt(m["recall"]),
                     _fmt(m["boundary_iou"]), f"{100 * m['pixel_frequency']:.2f}%"])
    return rows


def worst_classes(metrics: dict, k: int = 3) -> list[tuple[str, float]]:
    scored = [(n, m["iou"]) for n, m in metrics["per_class"].items() if m["iou"] is not None]
    return sorted(scored, key=lambda t: t[1])[:k]


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}
.big{font-size:1.4em}"""


def write_report(out: Path, metrics: dict, taxonomy: Taxonomy, random_samples: Sequence[Sample],
                 worst_samples: Sequence[Sample], config_text: str, checkpoint: str, split: str) -> dict[str, Path]:
    """Write report.md (with PNGs beside it) and a self-contained report.html; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "confusion_matrix.png": confusion_png(np.array(metrics["confusion_matrix"]), metrics["classes"]),
        "per_class_iou.png": iou_bars_png(metrics["per_class"], taxonomy),
        "show_results.png": results_png(random_samples, taxonomy, f"Random {split} images"),
        "top_losses.png": results_png(worst_samples, taxonomy, f"The {len(worst_samples)} worst {split} images by mIoU"),
    }
    for name, data in figures.items():
        (out / name).write_bytes(data)
    table = metrics_table(metrics)
    worst = ", ".join(f"{n} ({v:.3f})" for n, v in worst_classes(metrics))
    majority = metrics.get("majority_pixel_error_rate")
    versus = f" (always the most frequent class: {_fmt(majority)})" if majority is not None else ""
    headline = (f"mIoU {_fmt(metrics['mIoU'])} over {len(metrics['mIoU_over'])} classes present · "
                f"pixel error rate {_fmt(metrics['pixel_error_rate'])}{versus} · {metrics['num_images']} images")
    captions = {
        "per_class_iou.png": "Per-class IoU (coloured) and boundary IoU (grey)",
        "confusion_matrix.png": "Confusion matrix, each true class's row normalised to 1",
        "show_results.png": "show_results: random images",
        "top_losses.png": "Top losses: the worst images",
    }
    md = [f"# Evaluation on the {split} split", "", f"**{headline}**", "", f"Worst classes: {worst}", "",
          _md_table(table), ""]
    md += [f"## {captions[n]}\n\n![{captions[n]}]({n})\n" for n in figures]
    md += ["## Run", "", f"Checkpoint: `{checkpoint}`", "", "```yaml", config_text.rstrip(), "```", ""]
    (out / "report.md").write_text("\n".join(md))

    def img(name: str) -> str:
        return f'<img alt="{captions[name]}" src="data:image/png;base64,{base64.b64encode(figures[name]).decode()}">'

    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>pcbseg evaluation ({split})</title>",
            f"<style>{_CSS}</style></head><body>", f"<h1>Evaluation on the {split} split</h1>",
            f"<p class='big'><b>{html.escape(headline)}</b></p>", f"<p>Worst classes: {html.escape(worst)}</p>",
            _html_table(table)]
    page += [f"<h2>{captions[n]}</h2>{img(n)}" for n in figures]
    page += ["<h2>Run</h2>", f"<p>Checkpoint: <code>{html.escape(checkpoint)}</code></p>",
             f"<pre>{html.escape(config_text)}</pre></body></html>"]
    (out / "report.html").write_text("\n".join(page))
    return {"md": out / "report.md", "html": out / "report.html", **{n: out / n for n in figures}}


def write_comparison(out: Path, entries: Sequence[tuple[str, dict]]) -> dict[str, Path]:
    """Side by side: one row per run, one column per class, as Markdown, CSV and a grouped bar chart.

    Each entry is ``(label, metrics)`` with ``mIoU``, ``pixel_error_rate`` and ``per_class_iou`` (a
    training ``summary.json['val']``) or ``per_class`` (an evaluation ``metrics.json``).
    """
    out.mkdir(parents=True, exist_ok=True)

    def per_class(m: dict) -> dict[str, float | None]:
        if "per_class" in m:
            return {n: v["iou"] for n, v in m["per_class"].items()}
        return {n: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v) for n, v in m["per_class_iou"].items()}

    classes: list[str] = []
    for _, m in entries:
        classes += [c for c in per_class(m) if c not in classes]
    rows = [["run", "mIoU", "pixel error rate", *classes]]
    for label, m in entries:
        pc = per_class(m)
        rows.append([label, _fmt(m.get("mIoU")), _fmt(m.get("pixel_error_rate")), *[_fmt(pc.get(c)) for c in classes]])
    (out / "compare.md").write_text("# Runs side by side (IoU)\n\n" + _md_table(rows) + "\n\n![per-class IoU](compare.png)\n")
    with (out / "compare.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(classes), 3.8))
    width = 0.8 / max(1, len(entries))
    for k, (label, m) in enumerate(entries):
        pc = per_class(m)
        ax.bar(np.arange(len(classes)) + (k - (len(entries) - 1) / 2) * width, [pc.get(c) or 0 for c in classes],
               width, label=f"{label} (mIoU {_fmt(m.get('mIoU'))})")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("IoU")
    ax.legend(fontsize=8)
    (out / "compare.png").write_bytes(_png(fig))
    return {"md": out / "compare.md", "csv": out / "compare.csv", "png": out / "compare.png"}
