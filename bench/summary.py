#!/usr/bin/env python3
"""Run the benchmarks in bench/ and print one summary table: figures, same-run ratios, goals, PASS / MISS.

    python bench/summary.py [--quick] [--only engine,inbox] [--markdown] [--readme README.md] [--quiet]

Each benchmark runs as a subprocess with --json (and its own smoke size with --quick); its progress lines go to
stderr as they come, its JSON is read from stdout. The table has one or more rows per benchmark: what is measured,
the figure with its unit, what it is compared with in the same run and their ratio where the benchmark measures one
(ours against raw SpiffWorkflow, the recursive CTE against a naive trace, the batched tick against one transaction
per instance, ...), the goal the benchmark checks and PASS or MISS. The header names the date (UTC), the machine
(CPUs, model, memory), Python, SQLite and SpiffWorkflow, and the load average before and after the run: on a shared
machine compare figures taken at a similar load, or the CPU times and ratios.

A benchmark that exits non-zero, prints no valid JSON or JSON of an unexpected shape shows as FAILED in its row;
the others still run and summary.py exits 1 at the end. A MISS does not change the exit code (as in the scripts).

--markdown prints the table as Markdown; --readme PATH also writes it (with one line naming the machine, the load,
the date and this command) between the `<!-- bench:start -->` and `<!-- bench:end -->` markers of PATH.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
START_MARKER, END_MARKER = "<!-- bench:start -->", "<!-- bench:end -->"
READ_MONTH_GOAL_MS = 200.0  # docs/performance.md (issue 20): one month of one sensor in < 200 ms


@dataclass
class Row:
    """One line of the summary table; `result` is PASS, MISS, FAILED or empty (no goal)."""

    benchmark: str
    measure: str
    figure: str
    same_run: str = ""  # the comparison measured in the same run, as a ratio: "0.30x raw SpiffWorkflow (445/s)"
    goal: str = ""
    result: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    rows: Callable[[dict[str, Any]], list[Row]]
    quick_args: tuple[str, ...] = ("--quick",)


@dataclass
class Outcome:
    """What running one benchmark gave: its exit code, its stdout and the last lines of its stderr."""

    name: str
    returncode: int
    stdout: str
    stderr_tail: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- formatting -----------------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def num(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def times(value: float) -> str:
    """A ratio: 0.30x, 10.9x, 186x."""
    return f"{value:,.2f}x" if value < 10 else f"{value:,.1f}x" if value < 100 else f"{value:,.0f}x"


def tidy_goal(text: str) -> str:
    """'< 200.0 ms' -> '< 200 ms', '< 1000 ms' -> '< 1 s' (the scripts print their constants as they are)."""
    text = re.sub(r"(\d)\.0\b", r"\1", text.strip())
    return re.sub(r"\b(\d+)000 ms$", r"\1 s", text)


def split_goal(text: str) -> tuple[str, str]:
    """'< 10.0 ms: PASS' (bench/http_bench.py) -> ('< 10 ms', 'PASS')."""
    goal, _, status = text.rpartition(":")
    return tidy_goal(goal), status.strip()


def _backend(name: str, backend: str) -> str:
    return name if backend == "sqlite" else f"{name} ({backend})"


# --- rows per benchmark (each reads the JSON its script prints with --json) -----------------------------------


def engine_rows(r: dict[str, Any]) -> list[Row]:
    ours, raw, goals = r["ours"], r["raw"], r["goals"]
    g_ours, g_raw = r["growth"]["ours"], r["growth"]["raw"]
    return [
        Row("engine", f"steps/s, service layer + SQLite ({ours['instances']} instances)",
            f"{num(ours['steps_per_s'], 0)}/s",
            f"{times(r['ratio'])} raw SpiffWorkflow ({num(raw['steps_per_s'], 0)}/s)",
            f"{tidy_goal(goals['ratio']['target'])}x", goals["ratio"]["status"]),
        Row("engine", "CPU per step", ms(ours["cpu_ms_per_step"]),
            f"raw/ours {times(r['cpu_ratio'])} (raw {ms(raw['cpu_ms_per_step'])})",
            f"{tidy_goal(goals['cpu_ratio']['target'])}x", goals["cpu_ratio"]["status"]),
        Row("engine", f"step cost growth, {g_ours['loop']} loop passes",
            f"{times(g_ours['growth_x'])} (median {times(g_ours['growth_median_x'])})",  # the goal's 5 steps are noisy
            f"raw {times(g_raw['growth_x'])} ({g_raw['loop']} passes)",
            f"{tidy_goal(goals['growth']['target'])}x", goals["growth"]["status"]),
    ]


def trace_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for backend, run in r["runs"].items():
        name = _backend("trace", backend)
        if "skipped" in run:
            rows.append(Row(name, "skipped", run["skipped"]))
            continue
        forward, naive, goal = run["queries"]["forward"], run["naive"], run["goal"]
        rows.append(Row(name, f"forward, {forward['product_lots']:,} of {run['rows']['product_lots']:,} lots, p50",
                        ms(forward["p50_ms"]), f"naive {times(naive['ratio_naive_over_cte'])} slower",
                        tidy_goal(goal["target"]), goal["status"]))
    return rows


def imports_rows(r: dict[str, Any]) -> list[Row]:
    good, refused = r["good"], r["refused"]
    return [Row("imports", f"{good['rows']:,} product lots", f"{good['rows_per_s']:,} rows/s",
                f"refused file: {times(refused['rows_per_s'] / good['rows_per_s'])} rows/s")]


def readings_rows(r: dict[str, Any]) -> list[Row]:
    read = r["month"]["read_ms"]
    return [
        Row("readings", f"import {r['rows']:,} readings", f"{r['rows_per_s']:,} rows/s"),
        Row("readings", f"a month of a sensor ({r['month']['readings']:,}), median", ms(read["wall"]), "",
            f"< {READ_MONTH_GOAL_MS:.0f} ms", "PASS" if read["wall"] < READ_MONTH_GOAL_MS else "MISS"),
    ]


def layout_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for case in r["cases"]:
        if r["goal"].startswith(case["case"] + " "):  # the case the goal is about, and the largest
            rows.append(Row("layout", f"{case['elements']:,} elements, median", f"{num(case['median_s'])} s", "",
                            tidy_goal(r["goal"][len(case["case"]):]), "PASS" if r["met"] else "MISS"))
    largest = max(r["cases"], key=lambda case: case["elements"])
    if not r["goal"].startswith(largest["case"] + " "):
        rows.append(Row("layout", f"{largest['elements']:,} elements, median", f"{num(largest['median_s'])} s"))
    return rows


def inbox_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    goal = tidy_goal(f"< {r['goal_p95_ms']} ms")
    for run in r["runs"]:
        name = _backend("inbox", run["backend"])
        requests = {row["key"]: row for row in run["requests"]}
        for side, label in (("api", "API"), ("html", "HTML")):
            first, deep = requests[f"{side}_first"], requests[f"{side}_deep_cursor"]
            size = f", {run['open_tasks']:,} open" if side == "api" else ""
            rows.append(Row(name, f"{label} first page{size}, p95", ms(first["p95_ms"]), "", goal, first["goal"]))
            rows.append(Row(name, f"{label} page {run['deep_page'] + 1}, p95", ms(deep["p95_ms"]),
                            f"p50 {times(deep['p50_ms'] / first['p50_ms'])} first page", goal, deep["goal"]))
        for before in run["before"] or []:
            if before["page"] != 1:
                rows.append(Row(name, f"query of page {before['page']}, p50", ms(before["after"]["p50_ms"]),
                                f"{times(before['speedup_p50'])} faster than before"))
    return rows


def timers_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for run in r["runs"]:
        name = _backend("timers", run["backend"])
        idle, due, before, single = run["idle_tick"], run["due_tick"], run["before"], run["per_instance_transactions"]
        rows.append(Row(name, f"idle tick, {run['waiting']:,} waiting, p95", ms(idle["p95_ms"]),
                        f"no index {times(before['p50_ms'] / max(idle['p50_ms'], 0.001))} slower" if before else "",
                        tidy_goal(idle["goal"]), idle["status"]))
        rows.append(Row(name, f"tick, {run['due']} due, p95", ms(due["p95_ms"]),
                        f"{times(due['p50_ms'] / single['p50_ms'])} a commit per instance" if single else "",
                        tidy_goal(due["goal"]), due["status"]))
        if late := run["lateness"]:
            rows.append(Row(name, "scheduler lateness, max", f"{num(late['max_s'])} s", "", f"< {late['goal_s']} s",
                            late["status"]))
    return rows


def http_rows(r: dict[str, Any]) -> list[Row]:
    p95_goal, p95_status = split_goal(r["goal_p95"])
    cpu_goal, cpu_status = split_goal(r["goal_cpu"])
    name = _backend("http", r["backend"])
    return [
        Row(name, f"complete a task, {r['clients']} client, p95", ms(r["p95_ms"]), "", p95_goal, p95_status),
        Row(name, "server CPU per completion", ms(r["server_cpu_per_completion_ms"]), "", cpu_goal, cpu_status),
    ]


BENCHMARKS = [
    Benchmark("engine", "engine.py", engine_rows),
    Benchmark("trace", "trace.py", trace_rows),
    Benchmark("imports", "imports.py", imports_rows),
    Benchmark("readings", "readings.py", readings_rows),
    Benchmark("layout", "layout.py", layout_rows, ("--repeats", "1")),
    Benchmark("inbox", "inbox.py", inbox_rows),
    Benchmark("timers", "timers.py", timers_rows),
    Benchmark("http", "http_bench.py", http_rows, ("--instances", "5")),
]
BY_NAME = {benchmark.name: benchmark for benchmark in BENCHMARKS}


# --- from outcomes to rows ------------------------------------------------------------------------------------


def parse_json(stdout: str) -> Any:
    """The benchmark's JSON object: the whole stdout, or else its last non-empty line."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        lines = text.splitlines()
        if not lines:
            raise ValueError("no output on stdout") from None
        return json.loads(lines[-1])


def failed(name: str, reason: str) -> Row:
    return Row(name, "-", reason, result="FAILED")


def rows_for(benchmark: Benchmark, outcome: Outcome) -> list[Row]:
    """The benchmark's rows, or one FAILED row saying why (exit code, bad JSON, a JSON shape not understood)."""
    if outcome.returncode != 0:
        last = next((line.strip() for line in reversed(outcome.stderr_tail) if line.strip()), "")
        return [failed(benchmark.name, f"exit {outcome.returncode}" + (f": {last[:200]}" if last else ""))]
    try:
        result = parse_json(outcome.stdout)
    except ValueError as err:
        return [failed(benchmark.name, f"no JSON on stdout ({str(err)[:120]})")]
    if not isinstance(result, dict):
        return [failed(benchmark.name, f"JSON is a {type(result).__name__}, not an object")]
    try:
        return benchmark.rows(result)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as err:
        return [failed(benchmark.name, f"unexpected JSON ({type(err).__name__}: {str(err)[:120]})")]


# --- the header ---------------------------------------------------------------------------------------------


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    memory = memory_gb()
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "memory_gb": round(memory, 1) if memory else None,
            "system": f"{platform.system()} {platform.machine()}", "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "spiffworkflow": version("SpiffWorkflow")}


def load_text(load: Iterable[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


@dataclass
class Summary:
    """Everything the table and its header show."""

    started: datetime
    environment: dict[str, Any]
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]
    rows: list[Row]
    outcomes: list[Outcome]
    failed: list[str] = field(default_factory=list)
    quick: bool = False
    command: str = "python bench/summary.py"

    def machine(self) -> str:
        env = self.environment
        memory = f", {env['memory_gb']:.0f} GB" if env.get("memory_gb") else ""
        return f"{env['cpus']} CPUs ({env['cpu_model']}){memory}, {env['system']}"

    def header_lines(self) -> list[str]:
        env = self.environment
        kind = " - quick run (--quick: smoke sizes, not the sizes the goals are set for)" if self.quick else ""
        return [
            f"Qualiflow benchmarks, {self.started:%Y-%m-%d %H:%M} UTC{kind}",
            f"Machine: {self.machine()}",
            f"Python {env['python']}, SQLite {env['sqlite']}, SpiffWorkflow {env['spiffworkflow']}",
            f"Load average (1 / 5 / 15 min): before {load_text(self.load_before)}, after {load_text(self.load_after)}",
        ]

    def readme_line(self) -> str:
        """One line: date, machine, versions, load, the command (README space is short: tests/unit/test_docs.py)."""
        env = self.environment
        quick = " **Quick run**: smoke sizes, not the goals' sizes." if self.quick else ""
        return (f"{self.started:%Y-%m-%d %H:%M} UTC, {env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, "
                f"SQLite {env['sqlite']}, SpiffWorkflow {env['spiffworkflow']}, load {self.load_before[0]:.1f} -> "
                f"{self.load_after[0]:.1f}: `{self.command}`.{quick}")


COLUMNS = ("benchmark", "measure", "figure", "same run", "goal", "result")


def _cells(rows: list[Row]) -> list[tuple[str, ...]]:
    """The rows' cells; a benchmark's name only on its first row."""
    return [("" if index and rows[index - 1].benchmark == row.benchmark else row.benchmark, row.measure,
             row.figure, row.same_run, row.goal, row.result) for index, row in enumerate(rows)]


def text_table(rows: list[Row]) -> str:
    cells = [COLUMNS, *_cells(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(column.capitalize() for column in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for line in _cells(rows):
        cells = [_md(cell) for cell in line]
        if cells[-1] in ("MISS", "FAILED"):
            cells[-1] = f"**{cells[-1]}**"
        lines.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    return "\n".join(lines)


def render_text(summary: Summary) -> str:
    timing = ", ".join(f"{o.name} {o.seconds:.0f} s" for o in summary.outcomes)
    footer = [f"Ran: {timing}."]
    if summary.failed:
        footer.append(f"FAILED: {', '.join(summary.failed)} (see its output above).")
    return "\n".join(summary.header_lines() + ["", text_table(summary.rows), ""] + footer)


def render_markdown(summary: Summary) -> str:
    return summary.readme_line() + "\n\n" + markdown_table(summary.rows)


def replace_block(text: str, block: str) -> str:
    """Put `block` between the bench markers of `text` (the markers stay); ValueError without them."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"needs a line {START_MARKER} followed by a line {END_MARKER}")
    if text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1:
        raise ValueError(f"needs exactly one {START_MARKER} and one {END_MARKER}")
    return text[:start + len(START_MARKER)] + "\n" + block.strip("\n") + "\n" + text[end:]


# --- running --------------------------------------------------------------------------------------------------


def run_benchmark(benchmark: Benchmark, quick: bool, echo: bool = True) -> Outcome:
    """Run one script with --json; its stderr is passed on line by line (and its tail kept), stdout collected."""
    command = [sys.executable, str(BENCH_DIR / benchmark.script), "--json", *(benchmark.quick_args if quick else ())]
    tail: deque[str] = deque(maxlen=20)
    started = time.perf_counter()
    shown = shlex.join(["bench/" + benchmark.script, *command[2:]])
    print(f"[summary] {benchmark.name}: {shown}", file=sys.stderr, flush=True)
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as stdout:
        try:
            process = subprocess.Popen(command, cwd=BENCH_DIR.parent, stdout=stdout, stderr=subprocess.PIPE,
                                       text=True, errors="replace")
        except OSError as err:
            return Outcome(benchmark.name, 127, "", [str(err)], time.perf_counter() - started)
        assert process.stderr is not None
        for line in process.stderr:
            tail.append(line.rstrip("\n"))
            if echo:
                sys.stderr.write(line)
                sys.stderr.flush()
        returncode = process.wait()
        stdout.seek(0)
        output = stdout.read()
    return Outcome(benchmark.name, returncode, output, list(tail), time.perf_counter() - started)


def summarize(benchmarks: list[Benchmark], run: Callable[[Benchmark], Outcome], *, quick: bool = False,
              command: str = "python bench/summary.py",
              env: Callable[[], dict[str, Any]] | None = None,
              loadavg: Callable[[], tuple[float, ...]] = os.getloadavg,
              now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Summary:
    """Run every benchmark (a failure does not stop the others) and build the rows."""
    started, load_before = now(), tuple(loadavg())
    rows: list[Row] = []
    outcomes: list[Outcome] = []
    failures: list[str] = []
    for benchmark in benchmarks:
        outcome = run(benchmark)
        outcomes.append(outcome)
        these = rows_for(benchmark, outcome)
        if any(row.result == "FAILED" for row in these):
            failures.append(benchmark.name)
        rows += these
    return Summary(started, (env or environment)(), load_before, tuple(loadavg()), rows, outcomes, failures, quick,
                   command)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark at its smoke size (a few minutes)")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run, of: {','.join(BY_NAME)}")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--readme", metavar="PATH",
                        help=f"write the Markdown table between {START_MARKER} and {END_MARKER} in PATH")
    parser.add_argument("--quiet", action="store_true", help="do not pass on the benchmarks' progress lines")
    args = parser.parse_args(argv)
    args.benchmarks = BENCHMARKS
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in BY_NAME]
        if unknown or not names:
            parser.error(f"--only: unknown benchmark {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(BY_NAME)}")
        args.benchmarks = [benchmark for benchmark in BENCHMARKS if benchmark.name in names]
    if args.readme:
        path = Path(args.readme)
        try:
            replace_block(path.read_text(encoding="utf-8"), "")
        except (OSError, ValueError) as err:  # before a run of half an hour, not after it
            parser.error(f"--readme {path}: {err}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "bench/summary.py", *argv])
    summary = summarize(args.benchmarks, lambda benchmark: run_benchmark(benchmark, args.quick, not args.quiet),
                        quick=args.quick, command=command)
    print()
    print(render_markdown(summary) if args.markdown else render_text(summary))
    if args.readme:
        path = Path(args.readme)
        path.write_text(replace_block(path.read_text(encoding="utf-8"), render_markdown(summary)), encoding="utf-8")
        print(f"\n[summary] wrote the table into {path}", file=sys.stderr)
    if summary.failed:
        print(f"[summary] FAILED: {', '.join(summary.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
