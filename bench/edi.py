"""Benchmark: X12 parse + validate throughput and memory, next to node-x12 on the same files.

    .venv/bin/python -m bench.edi [--synthetic-mb 100] [--seconds 3] [--short]

* **ordersync**: :func:`~ordersync.channels.edi.x12.read_interchanges` (tokenizer, ISA/GS/ST envelope
  checks with counts and control numbers) and, for each 850, :func:`~ordersync.channels.edi.x12.po850.read_850`
  (the typed purchase order and its problems), over the shared third-party samples repeated for
  ``--seconds``, then once over a synthetic interchange of ``--synthetic-mb`` MB (850s in one group), each
  in a process of its own so that its peak memory (max RSS) is its own.
* **node-x12 1.7.1** (npm, installed once into ``~/.cache/ordersync/bench/node-x12``): the workplace's
  ``../shared/tools/x12-node-baseline.js`` parses the same samples for ~3 s (strict mode) in the same run,
  and the synthetic file once (it holds the whole text in memory).

Goal (issue 15): at least node-x12's speed with full envelope validation, memory flat in the input size.
Then documents written per second: 855, 856 and 810 answering the shared sample 850, each a whole
interchange (ISA, GS, ST..SE, GE, IEA) as sent.
* **ansi-x12 0.2.0** (PyPI): tokenize and parse with its envelope validation, on the same files in the
  same run (it reads a whole file into memory).
* **Memory**: the peak RSS on the synthetic interchange and on one a tenth of its size; flat means the
  larger costs no more than 1.25x the smaller.

``--short``: 10 MB synthetic, 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import Figure, emit

ROOT = Path(__file__).resolve().parent.parent
SHARED = next((p / "shared" for p in ROOT.parents if (p / "shared" / "samples").is_dir()), ROOT.parent / "shared")
SAMPLES = Path(os.environ.get("ORDERSYNC_SAMPLES", SHARED / "samples")) / "x12"
NODE_TOOL = SHARED / "tools" / "x12-node-baseline.js"
NODE_X12 = "node-x12@1.7.1"


def node_home() -> Path | None:
    """A folder with node-x12 installed (npm, once), or None without node/npm."""
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ordersync" / "bench" / "node-x12"
    if not (home / "node_modules" / "node-x12").is_dir():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(home), NODE_X12],
                       check=True, capture_output=True)
    return home


def synthetic(path: Path, megabytes: float) -> int:
    """An interchange of 850s in one group, about ``megabytes`` MB; returns the number of sets."""
    isa = "ISA*00*          *00*          *ZZ*BUYER          *ZZ*KESTREL        *261205*1200*U*00401*000000001*0*P*>~\n"
    head = isa + "GS*PO*BUYER*KESTREL*20261205*1200*1*X*004010~\n"
    n = 0
    target = int(megabytes * 1_000_000)
    with path.open("w", encoding="ascii") as out:
        out.write(head)
        written = len(head)
        while written < target:
            n += 1
            number = f"{n:09d}"
            lines = "".join(f"PO1*{i}*{i * 3}*EA*{9 + i}.25**VN*SKU-{i:04d}*BP*CPN-{n}-{i}~\nPID*F****ITEM {i}~\n"
                            for i in range(1, 11))
            body = (f"BEG*00*SA*PO{number}**20261205~\nCUR*BY*EUR~\nDTM*002*20261220~\nN1*ST*PLANT*92*ST-{n % 50}~\n"
                    f"N3*HAFENSTRASSE {n % 100}~\nN4*HAMBURG**20457*DE~\n{lines}CTT*10~\n")
            count = body.count("~") + 2
            ts = f"ST*850*{number}~\n{body}SE*{count}*{number}~\n"
            out.write(ts)
            written += len(ts)
        tail = f"GE*{n}*1~\nIEA*1*000000001~\n"
        out.write(tail)
    return n


def ours(files: list[str], seconds: float) -> dict[str, float]:
    """Run in a process of its own (``--child``): parse + validate ``files`` repeatedly for ``seconds``
    (once if 0); MB/s, sets/s, problems found, peak RSS."""
    import io

    from ordersync.channels.edi.x12 import GroupClosed, InterchangeClosed, TransactionSet, read_interchanges
    from ordersync.channels.edi.x12.po850 import read_850

    total_bytes = sets = problems = envelope_errors = 0
    started = time.perf_counter()
    while True:
        for name in files:
            with open(name, "rb") as stream:
                total_bytes += os.fstat(stream.fileno()).st_size
                for item in read_interchanges(stream if seconds == 0 else io.BytesIO(stream.read())):
                    if isinstance(item, TransactionSet):
                        sets += 1
                        envelope_errors += len(item.errors)
                        if item.code == "850":
                            problems += len(read_850(item)[1])
                    elif isinstance(item, GroupClosed | InterchangeClosed):
                        envelope_errors += len(item.errors)
        elapsed = time.perf_counter() - started
        if seconds == 0 or elapsed >= seconds:
            break
    return {"mb_s": total_bytes / 1e6 / elapsed, "sets_s": sets / elapsed, "sets": sets, "problems": problems,
            "envelope_errors": envelope_errors, "seconds": elapsed,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def documents_per_second(seconds: float) -> dict[str, float]:
    """855, 856 and 810 written per second (whole interchanges) for the shared sample 850."""
    import datetime as dt
    import io
    from decimal import Decimal

    from ordersync.canonical.v1 import Invoice, InvoiceLine, InvoiceState, Shipment, ShipmentLine, ShipmentState
    from ordersync.channels.edi.x12 import TransactionSet, read_interchanges
    from ordersync.channels.edi.x12.ack855 import LineAnswer, LinePart, LineStatus, body_855
    from ordersync.channels.edi.x12.outbound import body_810, body_856
    from ordersync.channels.edi.x12.po850 import read_850
    from ordersync.channels.edi.x12.writer import Parties, group, iea, isa, transaction_set

    (ts,) = [i for i in read_interchanges(io.BytesIO((SAMPLES / "nodex12_850.edi").read_bytes()))
             if isinstance(i, TransactionSet)]
    po, _ = read_850(ts)
    assert po is not None
    at = dt.datetime(2026, 12, 5, 14, 30, tzinfo=dt.UTC)
    parties = Parties("ZZ", "KESTREL", "ZZ", "BUYER", "KESTREL", "BUYER")
    shipment = Shipment(id="sh", order_id="o", state=ShipmentState.SHIPPED, carrier="DHLG", tracking_number="JJD1",
                        lines=tuple(ShipmentLine(line_no=n, sku="X", quantity=line.quantity)
                                    for n, line in enumerate(po.lines, 1)))
    invoice = Invoice(id="i", order_id="o", account_id="C", state=InvoiceState.POSTED, currency="EUR",
                      untaxed_amount=Decimal(100), tax_amount=Decimal(19), total_amount=Decimal(119),
                      lines=tuple(InvoiceLine(line_no=n, sku="X", quantity=line.quantity, unit_price=Decimal(1),
                                              amount=line.quantity) for n, line in enumerate(po.lines, 1)))
    makers: dict[str, tuple[str, Callable[[], list[tuple[str, ...]]]]] = {
        "855": ("PR", lambda: body_855(po.number, po.date, [LineAnswer(line, (LinePart(LineStatus.ACCEPTED,
                                                                                        line.quantity),))
                                                            for line in po.lines], at=at.date())),
        "856": ("SH", lambda: body_856(po, shipment, at=at)),
        "810": ("IN", lambda: body_810(po, invoice)),
    }
    rates = {}
    for code, (functional_id, make) in makers.items():
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(100):
                n += 1
                text = "".join([isa(parties, n, at=at), *group(functional_id, parties, n, "004010",
                                                              [transaction_set(code, "0001", make())], at=at),
                                iea(1, n)])
        rates[code] = n / (time.perf_counter() - started)
        assert text.startswith("ISA")
    return rates


def ansi(files: list[str], seconds: float) -> dict[str, float]:
    """``ansi-x12`` 0.2.0 in a process of its own (``--ansi-child``): tokenize and parse (envelope
    validation: nesting, control numbers, counts) each file, whole in memory as it requires. It refuses a
    byte-order mark and trailing line breaks, so it is handed each file without them (the time to strip
    them is not counted); a file it still refuses counts as a failure."""
    from x12 import parse_x12_interchange, tokenize_x12

    total_bytes = sets = failures = passes = 0
    started = time.perf_counter()
    while True:
        passes += 1
        for name in files:
            payload = Path(name).read_bytes().lstrip(b"\xef\xbb\xbf \r\n\t").rstrip(b"\r\n \t")
            total_bytes += len(payload)
            try:
                interchange = parse_x12_interchange(tokenize_x12(payload))
                sets += sum(len(g.transactions) for g in interchange.groups)
            except Exception:  # a file it cannot read counts as a failure; the run goes on
                failures += 1
        elapsed = time.perf_counter() - started
        if seconds == 0 or elapsed >= seconds:
            break
    return {"mb_s": total_bytes / 1e6 / elapsed, "sets_s": sets / elapsed, "sets": sets,
            "failures": failures / passes, "seconds": elapsed,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_ansi(files: list[Path], seconds: float) -> dict[str, float] | None:
    out = subprocess.run([sys.executable, "-m", "bench.edi", "--ansi-child", str(seconds), *map(str, files)],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"ansi-x12 failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_ours(files: list[Path], seconds: float) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.edi", "--child", str(seconds), *map(str, files)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def run_node(home: Path, files: list[Path]) -> dict[str, float] | None:
    """node-x12 on ``files`` (~3 s of repeated parsing), its MB/s and documents/s, and its peak RSS; None
    (and why) when it fails (on a large file: out of heap)."""
    out = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", "node", str(NODE_TOOL), *map(str, files)],
                         env={**os.environ, "NODE_PATH": str(home / "node_modules")}, capture_output=True, text=True)
    if out.returncode != 0:
        tail = [line for line in out.stderr.splitlines() if line.strip()][-3:]
        print(f"node-x12 failed (exit {out.returncode}): {' | '.join(tail)}", flush=True)
        return None
    match = re.search(r"([\d.]+) MB/s, (\d+) documents/s", out.stdout)
    rss = re.search(r"maxrss (\d+)", out.stderr)
    if not match:
        raise SystemExit(f"node-x12 printed no figures: {out.stdout} {out.stderr[-500:]}")
    return {"mb_s": float(match.group(1)), "docs_s": float(match.group(2)),
            "max_rss_mb": int(rss.group(1)) / 1024 if rss else float("nan")}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(ours(sys.argv[3:], float(sys.argv[2]))))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--ansi-child":
        print(json.dumps(ansi(sys.argv[3:], float(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs")
    parser.add_argument("--synthetic-mb", type=float, help="size of the synthetic interchange (default 100)")
    parser.add_argument("--seconds", type=float, help="seconds of repeated parsing of the samples (default 3)")
    args = parser.parse_args()
    mb = args.synthetic_mb or (10.0 if args.short else 100.0)
    seconds = args.seconds or (2.0 if args.short else 3.0)
    samples = sorted(SAMPLES.iterdir())
    home = node_home()
    figures: list[Figure] = []
    print(f"EDI benchmark: {len(samples)} shared X12 samples for {seconds:.0f} s, then a synthetic interchange of "
          f"{mb:.0f} MB; baseline node-x12 1.7.1 on the same files" + ("" if home else " (node/npm missing: skipped)"),
          flush=True)
    s = run_ours(samples, seconds)
    print(f"ordersync samples    {s['mb_s']:7.2f} MB/s   {s['sets_s']:9,.0f} sets/s   envelope errors "
          f"{s['envelope_errors']:.0f}   850 problems {s['problems']:.0f}   max RSS {s['max_rss_mb']:.0f} MB",
          flush=True)
    node_s = run_node(home, samples) if home else None
    if node_s:
        print(f"node-x12 samples     {node_s['mb_s']:7.2f} MB/s   {node_s['docs_s']:9,.0f} documents/s   "
              f"max RSS {node_s['max_rss_mb']:.0f} MB", flush=True)
    ansi_s = run_ansi(samples, seconds)
    if ansi_s:
        print(f"ansi-x12 samples     {ansi_s['mb_s']:7.2f} MB/s   {ansi_s['sets_s']:9,.0f} sets/s   refuses "
              f"{ansi_s['failures']:.0f} of {len(samples)} files (no final terminator)   max RSS "
              f"{ansi_s['max_rss_mb']:.0f} MB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "synthetic.edi"
        n = synthetic(big, mb)
        b = run_ours([big], 0)
        print(f"ordersync synthetic  {b['mb_s']:7.2f} MB/s   {b['sets_s']:9,.0f} sets/s   ({n:,} sets, envelope "
              f"errors {b['envelope_errors']:.0f}, 850 problems {b['problems']:.0f})   "
              f"max RSS {b['max_rss_mb']:.0f} MB", flush=True)
        node_b = run_node(home, [big]) if home else None
        if node_b:
            print(f"node-x12 synthetic   {node_b['mb_s']:7.2f} MB/s   max RSS {node_b['max_rss_mb']:.0f} MB",
                  flush=True)
        ansi_b = run_ansi([big], 0)
        if ansi_b:
            print(f"ansi-x12 synthetic   {ansi_b['mb_s']:7.2f} MB/s   {ansi_b['sets_s']:9,.0f} sets/s   "
                  f"max RSS {ansi_b['max_rss_mb']:.0f} MB", flush=True)
        small = Path(tmp) / "synthetic-tenth.edi"
        synthetic(small, mb / 10)
        t = run_ours([small], 0)
        print(f"ordersync on {mb / 10:.0f} MB: max RSS {t['max_rss_mb']:.0f} MB; on {mb:.0f} MB: "
              f"{b['max_rss_mb']:.0f} MB", flush=True)
    written = documents_per_second(min(seconds, 2.0))
    print("documents written per second (whole interchanges): "
          + ",  ".join(f"{code} {rate:,.0f}/s" for code, rate in written.items()), flush=True)
    figures += [Figure("edi", f"{code} written per second", rate, "/s") for code, rate in written.items()]
    for label, o, an in (("samples", s, ansi_s), ("synthetic", b, ansi_b)):
        if an:
            ratio = o["mb_s"] / an["mb_s"]
            print(f"{label}: ordersync / ansi-x12 {ratio:.2f}x MB/s")
            figures.append(Figure("edi", f"{label}: ordersync / ansi-x12", ratio, "x", an["mb_s"], "ansi-x12 MB/s",
                                  1.0, higher=True))
    growth = b["max_rss_mb"] / t["max_rss_mb"]
    print(f"memory: 10x the input, {growth:.2f}x the peak RSS (goal: flat, <= 1.25x: "
          f"{'met' if growth <= 1.25 else 'MISSED'})")
    figures.append(Figure("edi", f"max RSS {mb:.0f} MB / {mb / 10:.0f} MB input", growth, "x", t["max_rss_mb"],
                          f"max RSS on {mb / 10:.0f} MB", 1.25, higher=False))
    for label, o, nd in (("samples", s, node_s), ("synthetic", b, node_b)):
        ratio = o["mb_s"] / nd["mb_s"] if nd else float("nan")
        if nd:
            print(f"{label}: ordersync / node-x12 {ratio:.2f}x MB/s (goal >= 1: {'met' if ratio >= 1 else 'MISSED'})")
        figures.append(Figure("edi", f"parse+validate {label} MB/s", o["mb_s"], "MB/s", nd["mb_s"] if nd else None,
                              "node-x12 MB/s"))
        if nd:
            figures.append(Figure("edi", f"{label}: ordersync / node-x12", ratio, "x", nd["mb_s"], "node-x12 MB/s",
                                  1.0, higher=True))
    figures.append(Figure("edi", f"max RSS on {mb:.0f} MB", b["max_rss_mb"], "MB", s["max_rss_mb"],
                          "max RSS on the samples"))
    emit(figures)


if __name__ == "__main__":
    main()
