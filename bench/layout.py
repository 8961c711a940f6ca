#!/usr/bin/env python3
"""Layout benchmark: app/services/diagram_layout.add_layout on generated diagrams without DI.

    python bench/layout.py [--repeats N] [--json] [--profile [SORT]]

Cases (tests/unit/services/large_diagrams.py, deterministic): a 300-way parallel fan-out, a chain of 600 user
tasks, and mixed diagrams of 2,000 and 5,000 elements (sequences, exclusive choices looping back, parallel
splits, collapsed subprocesses, boundary timers, three lanes); 5,000 is the default DIAGRAM_LAYOUT_MAX_ELEMENTS.
An element is what count_elements counts: flow nodes, flows, lanes and pools.

Each case is laid out --repeats times (default 3) after an untimed warm-up; the best and median are printed.
Goal (from issue 17): 2,000 elements in under 2 s. A miss prints MISS and still exits 0; a layout that fails
exits 1. The machine is shared: the output records the load average, worth a rerun when it is high.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/layout.py` puts bench/ first on the path, not the project

from app.services.studio.diagram_layout import add_layout, count_elements, parse  # noqa: E402
from tests.unit.services import large_diagrams  # noqa: E402

CASES = [
    ("fan-out 300", lambda: large_diagrams.fan_out(300)),
    ("chain 600", lambda: large_diagrams.chain(600)),
    ("mixed 2,000", lambda: large_diagrams.mixed(2000)),
    ("mixed 5,000 (the limit)", lambda: large_diagrams.mixed(4990)),
]
GOAL = ("mixed 2,000", 2.0)  # seconds


def measure(data: bytes, repeats: int) -> list[float]:
    add_layout(data, max_elements=10**9)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        add_layout(data, max_elements=10**9)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", nargs="?", const="cumtime", metavar="SORT",
                        help="cProfile one layout of each case, to stderr")
    args = parser.parse_args()
    results = []
    for name, make in CASES:
        data = make()
        elements = count_elements(parse(data))
        try:
            times = measure(data, args.repeats)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            print(f"{name}: layout failed: {exc!r}", file=sys.stderr)
            return 1
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(add_layout, data, max_elements=10**9)
            print(f"--- {name}", file=sys.stderr)
            pstats.Stats(profile, stream=sys.stderr).sort_stats(args.profile).print_stats(15)
        results.append({"case": name, "elements": elements, "bytes": len(data), "best_s": round(min(times), 3),
                        "median_s": round(statistics.median(times), 3)})
    goal_case, goal_seconds = GOAL
    measured = next(r["median_s"] for r in results if r["case"] == goal_case)
    summary = {"cases": results, "goal": f"{goal_case} < {goal_seconds} s", "met": measured < goal_seconds,
               "load_average": os.getloadavg()[0], "repeats": args.repeats}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"Diagram layout (add_layout), {args.repeats} runs each; load average {summary['load_average']:.2f}")
    print(f"{'case':<26}{'elements':>9}{'KB':>8}{'best s':>9}{'median s':>10}{'ms/element':>12}")
    for r in results:
        print(f"{r['case']:<26}{r['elements']:>9}{r['bytes'] / 1024:>8.0f}{r['best_s']:>9.3f}{r['median_s']:>10.3f}"
              f"{1000 * r['median_s'] / r['elements']:>12.3f}")
    print(f"goal {summary['goal']}: {'ok' if summary['met'] else 'MISS'} ({measured:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
