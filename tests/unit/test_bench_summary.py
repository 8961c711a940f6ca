"""bench/summary.py: the one table `make bench` prints, from the JSON the benchmarks print (recorded samples here:
no benchmark runs in these tests), FAILED rows and the exit code, and the README block it rewrites."""
from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import summary

# Recorded `bench/<script> --quick --json` (layout: --repeats 1, http_bench: --instances 5).
SAMPLES = Path(__file__).parent / "bench_samples"
ENV = {"cpus": 2, "cpu_model": "Test CPU @ 2.0GHz", "memory_gb": 8.0, "system": "Linux x86_64", "python": "3.11.7",
       "sqlite": "3.40.1", "spiffworkflow": "3.2.0"}


def sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def outcome(benchmark: summary.Benchmark, result: dict | str | None = None, returncode: int = 0,
            stderr: list[str] | None = None) -> summary.Outcome:
    if result is None:
        result = sample(benchmark.script.removesuffix(".py"))
    stdout = result if isinstance(result, str) else json.dumps(result)
    return summary.Outcome(benchmark.name, returncode, stdout, stderr or [], 1.0)


def summarize(outcomes: dict[str, summary.Outcome] | None = None, benchmarks=None, **kwargs) -> summary.Summary:
    outcomes = outcomes or {}
    loads = iter([(1.5, 1.0, 0.5), (2.5, 1.5, 0.75)])
    return summary.summarize(benchmarks or summary.BENCHMARKS,
                             lambda benchmark: outcomes.get(benchmark.name) or outcome(benchmark),
                             env=lambda: ENV, loadavg=lambda: next(loads),
                             now=lambda: datetime(2026, 12, 8, 1, 30, tzinfo=UTC), **kwargs)


def test_the_table_has_each_benchmarks_figures_same_run_ratios_goals_and_verdicts() -> None:
    result = summarize()

    assert result.failed == []
    assert [row.benchmark for row in result.rows] == [
        "engine", "engine", "engine", "trace", "imports", "readings", "readings", "layout", "layout", "inbox", "inbox",
        "inbox", "inbox", "inbox", "timers", "timers", "timers", "http", "http"]
    engine = result.rows[0]
    assert (engine.figure, engine.same_run, engine.goal, engine.result) == (
        "135/s", "0.20x raw SpiffWorkflow (666/s)", ">= 0.5x", "MISS")
    growth = result.rows[2]
    assert (growth.measure, growth.figure, growth.same_run, growth.result) == (
        "step cost growth, 50 loop passes", "1.29x (median 1.09x)", "raw 6.60x (50 passes)", "PASS")
    trace = result.rows[3]
    assert (trace.figure, trace.same_run, trace.goal, trace.result) == (
        "84.2 ms", "naive 22.0x slower", "< 1 s", "PASS")
    inbox = {row.measure: row for row in result.rows if row.benchmark == "inbox"}
    assert inbox["API page 150, p95"].same_run == "p50 3.09x first page"
    assert inbox["API page 150, p95"].goal == "< 100 ms"
    timers = {row.measure: row for row in result.rows if row.benchmark == "timers"}
    assert timers["tick, 20 due, p95"].same_run == "0.31x a commit per instance"
    assert timers["tick, 20 due, p95"].goal == "< 200 ms"
    http = [row for row in result.rows if row.benchmark == "http"]
    assert [(row.figure, row.goal, row.result) for row in http] == [("25.4 ms", "< 10 ms", "MISS"),
                                                                      ("7.50 ms", "<= 5 ms", "MISS")]


def test_a_goal_the_summary_checks_itself_misses_when_the_figure_is_over_it() -> None:
    slow = sample("readings")
    slow["month"]["read_ms"]["wall"] = 250.0
    benchmark = summary.BY_NAME["readings"]

    result = summarize({"readings": outcome(benchmark, slow)}, [benchmark])

    month = next(row for row in result.rows if row.measure.startswith("a month of a sensor"))
    assert (month.figure, month.goal, month.result) == ("250 ms", "< 200 ms", "MISS")
    assert result.failed == []  # a MISS is a finding, not a failure


def test_a_failing_benchmark_shows_failed_and_the_others_still_run() -> None:
    broken = {
        "trace": outcome(summary.BY_NAME["trace"], "", 1, ["[01:02] seeding", "bench: error: row counts differ"]),
        "layout": outcome(summary.BY_NAME["layout"], "Traceback (most recent call last):\n  no JSON here"),
        "http": outcome(summary.BY_NAME["http"], {"backend": "sqlite", "p95_ms": 3.0}),  # keys it needs are missing
    }

    result = summarize(broken)

    assert result.failed == ["trace", "layout", "http"]
    failed = {row.benchmark: row for row in result.rows if row.result == "FAILED"}
    assert failed["trace"].figure == "exit 1: bench: error: row counts differ"
    assert failed["layout"].figure.startswith("no JSON on stdout")
    assert failed["http"].figure.startswith("unexpected JSON (KeyError")
    assert {row.benchmark for row in result.rows if row.result != "FAILED"} == {
        "engine", "imports", "readings", "inbox", "timers"}
    text = summary.render_text(result)
    assert "FAILED: trace, layout, http" in text
    assert "| **FAILED** |" in summary.markdown_table(result.rows)


def test_the_header_names_the_date_machine_versions_and_load_before_and_after() -> None:
    result = summarize(quick=True, command="python bench/summary.py --quick")

    header = summary.render_text(result).splitlines()[:4]
    assert header == [
        "Qualiflow benchmarks, 2026-12-08 01:30 UTC - quick run (--quick: smoke sizes, not the sizes the goals are "
        "set for)",
        "Machine: 2 CPUs (Test CPU @ 2.0GHz), 8 GB, Linux x86_64",
        "Python 3.11.7, SQLite 3.40.1, SpiffWorkflow 3.2.0",
        "Load average (1 / 5 / 15 min): before 1.50 / 1.00 / 0.50, after 2.50 / 1.50 / 0.75",
    ]
    line = summary.render_markdown(result).splitlines()[0]
    assert line == ("2026-12-08 01:30 UTC, 2 CPUs (Test CPU @ 2.0GHz), Python 3.11.7, SQLite "
                    "3.40.1, SpiffWorkflow 3.2.0, load 1.5 -> 2.5: `python bench/summary.py --quick`. **Quick run**: "
                    "smoke sizes, not the goals' sizes.")


def test_markdown_table_names_each_benchmark_once_and_escapes_pipes() -> None:
    rows = [summary.Row("engine", "a | b", "1 ms", "", "< 2 ms", "PASS"),
            summary.Row("engine", "c", "3 ms", "0.5x x", "< 2 ms", "MISS")]

    assert summary.markdown_table(rows).splitlines() == [
        "| Benchmark | Measure | Figure | Same run | Goal | Result |",
        "|---|---|---|---|---|---|",
        "| engine | a \\| b | 1 ms | | < 2 ms | PASS |",
        "| | c | 3 ms | 0.5x x | < 2 ms | **MISS** |",
    ]


def test_the_readme_block_is_replaced_between_its_markers_and_nothing_else_changes() -> None:
    readme = "# Title\n\n## Performance\n\nText.\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\n## Next\n"

    once = summary.replace_block(readme, "new line\n\n| a |\n")

    assert once == ("# Title\n\n## Performance\n\nText.\n\n<!-- bench:start -->\nnew line\n\n| a |\n"
                    "<!-- bench:end -->\n\n## Next\n")
    assert summary.replace_block(once, "new line\n\n| a |") == once


@pytest.mark.parametrize("text", ["no markers", "<!-- bench:end -->\n<!-- bench:start -->\n",
                                  "<!-- bench:start -->\n<!-- bench:end -->\n<!-- bench:start -->\n<!-- bench:end -->"])
def test_a_readme_without_one_pair_of_markers_in_order_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bench:start"):
        summary.replace_block(text, "table")


def fake_runs(monkeypatch: pytest.MonkeyPatch, outcomes: dict[str, summary.Outcome] | None = None) -> list[tuple]:
    calls: list[tuple] = []

    def run(benchmark: summary.Benchmark, quick: bool, echo: bool = True) -> summary.Outcome:
        calls.append((benchmark.name, quick))
        return (outcomes or {}).get(benchmark.name) or outcome(benchmark)

    monkeypatch.setattr(summary, "run_benchmark", run)
    monkeypatch.setattr(summary, "environment", lambda: ENV)
    return calls


def test_main_writes_the_readme_and_exits_zero_when_every_benchmark_ran(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    calls = fake_runs(monkeypatch)
    readme = tmp_path / "README.md"
    readme.write_text("# Q\n\n<!-- bench:start -->\n<!-- bench:end -->\n")

    code = summary.main(["--quick", "--only", "engine,inbox", "--readme", str(readme)])

    assert code == 0
    assert calls == [("engine", True), ("inbox", True)]
    written = readme.read_text()
    assert "`python bench/summary.py --quick --only engine,inbox --readme " in written
    assert "| engine | steps/s, service layer + SQLite (5 instances) | 135/s |" in written
    assert "| inbox | API first page, 6,000 open, p95 |" in written
    assert "trace" not in written
    assert written.startswith("# Q\n\n<!-- bench:start -->\n2026-") and written.endswith("|\n<!-- bench:end -->\n")
    assert "steps/s, service layer + SQLite (5 instances)" in capsys.readouterr().out


def test_main_exits_non_zero_when_a_benchmark_failed(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    calls = fake_runs(monkeypatch, {"timers": summary.Outcome("timers", 1, "", ["bench: error: fired 99"])})

    code = summary.main(["--markdown"])

    assert code == 1
    assert len(calls) == len(summary.BENCHMARKS)  # the ones after the failure ran too
    captured = capsys.readouterr()
    assert "| timers | - | exit 1: bench: error: fired 99 | | | **FAILED** |" in captured.out
    assert "Test CPU @ 2.0GHz" in captured.out
    assert "FAILED: timers" in captured.err


def test_main_refuses_a_readme_without_markers_and_an_unknown_benchmark_before_running_anything(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_runs(monkeypatch)
    readme = tmp_path / "README.md"
    readme.write_text("# No markers\n")

    for argv in (["--readme", str(readme)], ["--only", "engine,nope"]):
        with pytest.raises(SystemExit) as exit_info:
            summary.main(argv)
        assert exit_info.value.code == 2
    assert calls == []
    assert readme.read_text() == "# No markers\n"


def test_a_benchmark_runs_with_json_its_quick_arguments_and_its_stderr_passed_on(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = tmp_path / "fake_bench.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        print("[progress] seeding", file=sys.stderr)
        print(json.dumps({"argv": sys.argv[1:]}))
        sys.exit(3 if "--fail" in sys.argv else 0)
    """))

    quick = summary.run_benchmark(summary.Benchmark("fake", str(script), lambda r: [], ("--repeats", "1")), True)
    full = summary.run_benchmark(summary.Benchmark("fake", str(script), lambda r: []), False, echo=False)
    failing = summary.run_benchmark(summary.Benchmark("fake", str(script), lambda r: [], ("--fail",)), True,
                                    echo=False)

    assert (quick.returncode, json.loads(quick.stdout)) == (0, {"argv": ["--json", "--repeats", "1"]})
    assert json.loads(full.stdout) == {"argv": ["--json"]}
    assert (failing.returncode, failing.stderr_tail) == (3, ["[progress] seeding"])
    assert capsys.readouterr().err.count("[progress] seeding") == 1  # echoed once: the quiet runs kept it
