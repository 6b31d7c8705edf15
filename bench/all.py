"""Every benchmark in one go, and one table of their figures: a guard against regressions.

    .venv/bin/python -m bench.all [--short] [--only a,b] [--skip a,b] [--run-dir DIR]

Runs each benchmark as a subprocess (``python -m bench.X``, with ``--short`` when given), one at a time,
in this order: order_path, bus, erp, read_path, intake, erp_cost, edi, shopify, chaos. ``--short`` is the quick form
of each and leaves chaos out (it needs PostgreSQL and NATS and takes minutes even short; name it in
``--only`` to run it anyway); without ``--short`` chaos runs in its ``--short`` form too, since its full
form takes hours (``python -m bench.chaos`` on its own for that).

Each benchmark's output goes to ``<run dir>/<name>.log``; this prints one line per benchmark (started,
finished, or FAILED with its exit code and the last lines of its log: a failure does not stop the
others). Each benchmark appends its figures to ``<run dir>/figures.jsonl`` (``bench._common.emit``);
at the end this prints one table (benchmark, figure, value, the baseline measured in the same run, the
goal and whether it was met), then "N goals met, M MISSED", and writes the same as Markdown to
``<run dir>/figures.md``. Exit code 1 when a benchmark failed (a missed goal shows in the table, not in
the exit code).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._common import FIGURES_ENV, Figure

BENCHES = ("order_path", "bus", "erp", "read_path", "intake", "erp_cost", "edi", "shopify", "chaos")
NOT_SHORT = ("chaos",)  # left out of --short unless --only names it
ROOT = Path(__file__).resolve().parent.parent
TAIL_LINES = 15


# -- the table -------------------------------------------------------------------------------------


def number(x: float) -> str:
    """A figure for people: thousands separators, whole numbers as such, 1-3 significant decimals."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    size = abs(x)
    if size >= 100:
        return f"{x:,.0f}"
    if size >= 10:
        return f"{x:,.1f}"
    if size >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"  # 0.0123, 0.5


def with_unit(x: float, unit: str) -> str:
    if not unit:
        return number(x)
    glued = unit == "x" or unit.startswith(("%", "/"))
    return f"{number(x)}{'' if glued else ' '}{unit}"


def baseline_cell(f: Figure) -> str:
    if f.baseline is None:
        return ""
    # a ratio's baseline is its denominator (a rate, named with its unit): the ratio's "x" is not its unit
    value = number(f.baseline) if f.unit == "x" else with_unit(f.baseline, f.unit)
    return f"{value} ({f.baseline_name})" if f.baseline_name else value


def goal_cell(f: Figure) -> str:
    if f.goal is None:
        return ""
    return f"{'>=' if f.higher else '<='} {with_unit(f.goal, f.unit)}"


HEADER = ("benchmark", "figure", "value", "same-run baseline", "goal", "")
RIGHT = (False, False, True, False, False, False)  # right-aligned columns (the value)


def rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    return [(f.bench, f.name, with_unit(f.value, f.unit), baseline_cell(f), goal_cell(f), f.verdict())
            for f in figures]


def render_table(figures: Sequence[Figure]) -> str:
    """The figures as a plain-text table (one row per figure, in the order given)."""
    body = rows(figures)
    widths = [max(len(r[i]) for r in [HEADER, *body]) for i in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if right else c.ljust(w)
                         for c, w, right in zip(cells, widths, RIGHT, strict=True)).rstrip()

    out = [line(HEADER), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    return "\n".join(out)


def render_markdown(figures: Sequence[Figure]) -> str:
    """The same table in Markdown (for a closing note)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(HEADER), "|" + "|".join("---:" if right else "---" for right in RIGHT) + "|"]
    out += [line(r) for r in rows(figures)]
    return "\n".join(out)


def summary(figures: Sequence[Figure]) -> str:
    met = sum(1 for f in figures if f.met is True)
    missed = sum(1 for f in figures if f.met is False)
    return f"{met} goal{'' if met == 1 else 's'} met, {missed} MISSED"


def read_figures(path: Path) -> list[Figure]:
    """The figures the benchmarks appended to ``path`` (JSON lines); a broken line is reported, not fatal."""
    if not path.exists():
        return []
    figures = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            figures.append(Figure(**json.loads(text)))
        except (ValueError, TypeError) as error:
            print(f"{path}:{n}: not a figure ({error}): {text[:200]}", file=sys.stderr)
    return figures


# -- running the benchmarks ------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    code: int
    seconds: float
    log: Path


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").rstrip("\n").splitlines()
    return "\n".join(f"    | {t}" for t in text[-lines:])


def run_one(name: str, short: bool, run_dir: Path, figures_path: Path) -> Outcome:
    log = run_dir / f"{name}.log"
    cmd = [sys.executable, "-m", f"bench.{name}", *(["--short"] if short else [])]
    env = {**os.environ, FIGURES_ENV: str(figures_path), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the benchmark too; give it time to stop what it started
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            raise
    return Outcome(name, code, time.perf_counter() - started, log)


def selected(only: str | None, skip: str | None, short: bool) -> list[str]:
    def names(value: str | None, option: str) -> list[str]:
        chosen = [n.strip() for n in (value or "").split(",") if n.strip()]
        unknown = [n for n in chosen if n not in BENCHES]
        if unknown:
            raise SystemExit(f"{option}: unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHES)})")
        return chosen

    wanted, skipped = names(only, "--only"), names(skip, "--skip")
    return [b for b in BENCHES
            if (b in wanted if wanted else not (short and b in NOT_SHORT)) and b not in skipped]


def commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form of every benchmark; leaves chaos out")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run (of {', '.join(BENCHES)})")
    parser.add_argument("--skip", help="comma-separated benchmarks not to run")
    parser.add_argument("--run-dir", type=Path, help="where the logs and figures go (default: a new temporary "
                                                     "directory)")
    args = parser.parse_args(argv)
    names = selected(args.only, args.skip, args.short)
    if not names:
        raise SystemExit("no benchmark left to run")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.run_dir is not None:
        run_dir = args.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = Path(tempfile.mkdtemp(prefix=f"ordersync-bench-{stamp}-"))
    figures_path = run_dir / "figures.jsonl"
    figures_path.write_text("", encoding="utf-8")
    form = "--short" if args.short else "full (chaos --short)"
    print(f"bench.all {form}: {', '.join(names)}; {os.cpu_count()} cores; logs and figures in {run_dir}",
          flush=True)
    if args.short and "chaos" not in names and not args.only:
        print("  chaos is not part of --short (PostgreSQL + NATS, minutes): python -m bench.all --only chaos, "
              "or without --short", flush=True)
    outcomes: list[Outcome] = []
    interrupted = False
    started = time.perf_counter()
    for k, name in enumerate(names, 1):
        label = f"[{k}/{len(names)}] {name:<10}"
        print(f"{label} started", flush=True)
        try:
            outcome = run_one(name, args.short, run_dir, figures_path)
        except KeyboardInterrupt:
            print(f"{label} interrupted; the other benchmarks are not run", flush=True)
            interrupted = True
            break
        outcomes.append(outcome)
        if outcome.code == 0:
            print(f"{label} finished in {outcome.seconds:,.0f} s", flush=True)
        else:
            print(f"{label} FAILED with exit code {outcome.code} after {outcome.seconds:,.0f} s; "
                  f"the end of {outcome.log}:\n{tail(outcome.log)}", flush=True)

    figures = read_figures(figures_path)
    revision = commit()
    failed = [o for o in outcomes if o.code != 0]
    silent = [o.name for o in outcomes if o.code == 0 and not any(f.bench.split(" ")[0] == o.name for f in figures)]
    print(f"\n{len(figures)} figures from {len(outcomes)} benchmark(s) in {time.perf_counter() - started:,.0f} s "
          f"(commit {revision}):\n")
    text = [render_table(figures) if figures else "(no figures)", "", summary(figures)]
    if silent:
        text.append(f"no figures from: {', '.join(silent)} (passed)")
    if failed:
        text.append("FAILED: " + ", ".join(f"{o.name} (exit {o.code}, {o.log})" for o in failed))
    print("\n".join(text), flush=True)

    invoked = shlex.join(["python", "-m", "bench.all", *(sys.argv[1:] if argv is None else argv)])
    note = [f"`{invoked}`, {stamp}, commit {revision}, "
            f"{os.cpu_count()} cores", "", render_markdown(figures), "", summary(figures)]
    if silent:
        note.append(f"\nno figures from: {', '.join(silent)} (passed)")
    if failed:
        note.append("\nFAILED: " + ", ".join(f"{o.name} (exit {o.code})" for o in failed))
    (run_dir / "figures.md").write_text("\n".join(note) + "\n", encoding="utf-8")
    print(f"\nthe table as Markdown: {run_dir / 'figures.md'}; the raw figures: {figures_path}", flush=True)
    if interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
