"""Run a benchmark suite: python benchmarks/run.py playground [--json]

With --json the last line printed is one JSON object with every figure.
Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUITES = {"playground": "benchmarks.playground", "cnn": "benchmarks.cnn", "explain": "benchmarks.explain",
          "backprop": "benchmarks.backprop", "live": "benchmarks.live", "classroom": "benchmarks.classroom",
          "stacked": "benchmarks.stacked", "chunks": "benchmarks.chunks",
          "sequence": "benchmarks.sequence", "page": "benchmarks.page"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app uses 1)")
    parser.add_argument("--students", type=int, default=10, help="classroom: scripted students (at most 60)")
    parser.add_argument("--seconds", type=float, default=60, help="classroom: seconds of training (at most 300)")
    parser.add_argument("--start", choices=["plain", "classroom"], default="plain",
                        help="classroom: `streamlit run app.py`, or classroom.py (HAProxy + 2 web processes)")
    parser.add_argument("--no-chromium", action="store_true", help="classroom: no real browser page beside them")
    args = parser.parse_args()

    import torch

    from dl_core.device import configure_threads, pick_device

    configure_threads(args.threads)
    suite = importlib.import_module(SUITES[args.suite])
    figures = (suite.run(args.students, args.seconds, args.start, not args.no_chromium) if args.suite == "classroom"
               else suite.run(args.students) if args.suite == "stacked" else suite.run())
    device = pick_device("cpu")
    figures |= {"device": f"{device.name} ({device.detail})", "torch": torch.__version__,
                "python": platform.python_version()}
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(map(len, figures))
        for k, v in figures.items():
            print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
