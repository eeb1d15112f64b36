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
          "backprop": "benchmarks.backprop", "live": "benchmarks.live"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app uses 1)")
    args = parser.parse_args()

    import torch

    from dl_core.device import configure_threads, pick_device

    configure_threads(args.threads)
    figures = importlib.import_module(SUITES[args.suite]).run()
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
