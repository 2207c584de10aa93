"""``pcbseg-sweep-report SWEEP_DIR``: a leaderboard of every run in a sweep, finished or not.

Writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.html`` and ``leaderboard.png`` into
the sweep folder (or ``--out``): one row per run with the overrides that vary across the sweep,
best val mIoU, pixel error rate, per-class IoU, epochs, wall time and status (finished, failed,
running, killed), best first. Runs that failed, were killed or are still going are listed too.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class RunRow:
    path: Path
    job: int | None
    overrides: list[str]
    status: str
    miou: float | None = None
    pixel_error_rate: float | None = None
    per_class: dict[str, float | None] = field(default_factory=dict)
    epochs: int | None = None
    wall_time_s: float | None = None
    error: str = ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _status(run: Path) -> tuple[str, str]:
    if (run / "summary.json").is_file():
        return "finished", ""
    path = run / "status.json"
    if not path.is_file():
        return "unknown", "no status.json (not started, or not a pcbseg-train run)"
    doc = json.loads(path.read_text())
    status = doc.get("status", "unknown")
    if status == "running" and doc.get("host") == socket.gethostname() and not _pid_alive(int(doc.get("pid", -1))):
        return "killed", "process gone without finishing"
    return status, doc.get("error", "")


def read_run(run: Path) -> RunRow:
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
    job = int(run.name) if run.name.isdigit() else None
    status, error = _status(run)
    row = RunRow(run, job, [str(o) for o in overrides], status, error=error)
    if status == "finished":
        s = json.loads((run / "summary.json").read_text())
        row.miou, row.pixel_error_rate = s["val"]["mIoU"], s["val"]["pixel_error_rate"]
        row.per_class = {k: (None if v is None or math.isnan(v) else v) for k, v in s["val"]["per_class_iou"].items()}
        row.epochs, row.wall_time_s = s.get("epochs"), s.get("wall_time_s")
    return row


def find_runs(sweep: Path) -> list[RunRow]:
    runs = sorted((p for p in sweep.rglob(".hydra") if p.is_dir()), key=lambda p: str(p))
    return [read_run(p.parent) for p in runs]


def varying(rows: list[RunRow]) -> list[list[str]]:
    """Each run's overrides that are not shared by every run in the sweep."""
    if len(rows) < 2:
        return [r.overrides for r in rows]
    common = set.intersection(*(set(r.overrides) for r in rows))
    return [[o for o in r.overrides if o not in common] for r in rows]


def _f(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def leaderboard(rows: list[RunRow]) -> list[list[str]]:
    order = sorted(range(len(rows)), key=lambda i: (rows[i].miou is None, -(rows[i].miou or 0.0)))
    changes = varying(rows)
    classes: list[str] = []
    for r in rows:
        classes += [c for c in r.per_class if c not in classes]
    table = [["rank", "run", "overrides", "status", "val mIoU", "pixel error rate", *classes, "epochs", "wall time (s)"]]
    for rank, i in enumerate(order, start=1):
        r = rows[i]
        status = r.status + (f" ({r.error[:200]})" if r.error else "")
        table.append([str(rank), r.path.name, " ".join(changes[i]) or "(none)", status, _f(r.miou), _f(r.pixel_error_rate, 4),
                      *[_f(r.per_class.get(c)) for c in classes], str(r.epochs or "—"),
                      "—" if r.wall_time_s is None else f"{r.wall_time_s:.0f}"])
    return table


def write(sweep: Path, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = find_runs(sweep)
    if not rows:
        raise FileNotFoundError(f"{sweep}: no Hydra run folders (with .hydra/) found")
    table = leaderboard(rows)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "leaderboard.csv").open("w", newline="") as f:
        csv.writer(f).writerows(table)
    counts = {s: sum(r.status == s for r in rows) for s in ("finished", "failed", "running", "killed", "unknown")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    md = [f"# Sweep {sweep}", "", f"{len(rows)} runs: {summary}.", "",
          "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in table[1:]]
    md += ["", "![val mIoU by run](leaderboard.png)", ""]
    (out / "leaderboard.md").write_text("\n".join(md))

    changes = varying(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
    labels = [" ".join(c) or r.path.name for c, r in zip(changes, rows, strict=True)]
    values = [r.miou or 0.0 for r in rows]
    colours = ["C0" if r.status == "finished" else "0.8" for r in rows]
    ax1.barh(range(len(rows)), values, color=colours, hatch=None)
    ax1.set_yticks(range(len(rows)), [f"{lbl} [{r.status}]" if r.status != "finished" else lbl
                                      for lbl, r in zip(labels, rows, strict=True)], fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("val mIoU (best checkpoint)")
    ax1.set_xlim(0, 1)
    ax1.set_title("By override")
    jobs = [(r.job, r.miou) for r in rows if r.job is not None and r.miou is not None]
    if jobs:
        jobs.sort()
        xs, ys = zip(*jobs, strict=True)
        ax2.plot(xs, ys, "o-", label="trial")
        best = [max(ys[: i + 1]) for i in range(len(ys))]
        ax2.step(xs, best, where="post", label="best so far")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("job / trial number")
    ax2.set_ylabel("val mIoU")
    ax2.set_title("By trial")
    fig.tight_layout()
    fig.savefig(out / "leaderboard.png", dpi=100)
    plt.close(fig)

    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table[1:])
    png = base64.b64encode((out / "leaderboard.png").read_bytes()).decode()
    (out / "leaderboard.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>pcbseg sweep</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>"
        f"<h1>Sweep {html.escape(str(sweep))}</h1><p>{len(rows)} runs: {html.escape(summary)}.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<img alt='val mIoU by run' src='data:image/png;base64,{png}'></body></html>"
    )
    return {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "html": out / "leaderboard.html",
            "png": out / "leaderboard.png"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcbseg-sweep-report", description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, help="a multirun folder (logs/<task>/multiruns/<time>)")
    ap.add_argument("--out", type=Path, default=None, help="where to write the leaderboard (default: the sweep folder)")
    args = ap.parse_args(argv)
    try:
        paths = write(args.sweep, args.out or args.sweep)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
