"""``pcbseg-compare RUN_DIR...``: holdout scores of finished runs side by side.

Reads each run's ``metrics.json`` (from pcbseg-eval) or else ``summary.json`` (from pcbseg-train)
and writes ``compare.md``, ``compare.csv`` and ``compare.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pcbseg.report import write_comparison


def load_scores(run: Path) -> dict:
    if (run / "metrics.json").is_file():
        return json.loads((run / "metrics.json").read_text())
    if (run / "summary.json").is_file():
        return json.loads((run / "summary.json").read_text())["val"]
    raise FileNotFoundError(f"{run}: neither metrics.json (pcbseg-eval) nor summary.json (pcbseg-train)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcbseg-compare", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders of pcbseg-train or pcbseg-eval")
    ap.add_argument("--out", type=Path, default=Path("compare"), help="folder for compare.md/csv/png (default: ./compare)")
    args = ap.parse_args(argv)
    try:
        entries = [(run.name, load_scores(run)) for run in args.runs]
    except (FileNotFoundError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    paths = write_comparison(args.out, entries)
    print((paths["md"]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
