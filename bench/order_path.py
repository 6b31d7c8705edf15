"""The path of one order from ``POST /v1/orders`` to ``order.accepted``, measured (not a speed benchmark).

    .venv/bin/python -m bench.order_path [--baseline DIR] [--files] [--short]

One order goes through a hub on the embedded default (SQLite, in-process bus) with the in-memory ERP
twin, under a profiler hook that notes every function entered in the hub's own source files, on every
thread. Per stage it prints the source files that ran, how often control came back to a file it had
already left (``returns``, counted on every function entered, so a property read counts too), how often
it came back to one of the flows' own files (``flow returns``: what a reader following the flow has to
go back to), the write transactions opened and the outbox rows written:

- ``intake``: the API request until its 202 (the API, the intake writer, the store);
- ``prepare``: the ``flow.order_prepare`` handler (validate, price, credit, allocate);
- ``submit``: the ``flow.erp_submit`` handler (the ERP sales orders, the acceptance);
- ``bus``: what carries the order between them (relay, transport, consumer runner), counted once.

With ``--baseline DIR`` the same walk runs in a subprocess on another checkout (a git worktree of an
older commit, say: ``git worktree add /tmp/before <commit>``) and both are printed side by side, so the
figures of this checkout are read next to a baseline measured in the same run. ``--short`` changes
nothing (one order is already quick); ``python -m bench.all --short`` passes it to every benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench._common import Figure

STAGES = ("intake", "prepare", "submit", "bus")
CONSUMERS = {"flow.order_prepare": "prepare", "flow.erp_submit": "submit"}
_stage = threading.local()


class PathTrace:
    """Function entries in ordersync's source files, per stage and thread, in order."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.calls: dict[str, list[tuple[int, str, str]]] = {s: [] for s in STAGES}
        self.default: str | None = None
        self._lock = threading.Lock()

    def hook(self, frame: Any, event: str, _arg: Any) -> None:
        if event != "call":
            return
        filename = frame.f_code.co_filename
        if not filename.startswith(self.root):
            return
        stage = getattr(_stage, "name", None) or self.default
        if stage is None:
            return
        with self._lock:
            self.calls[stage].append((threading.get_ident(), filename[len(self.root) + 1:], frame.f_code.co_name))

    @contextmanager
    def tracing(self) -> Iterator[None]:
        threading.setprofile(self.hook)
        sys.setprofile(self.hook)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]

    def summary(self, stage: str) -> dict[str, Any]:
        calls = self.calls[stage]
        files = sorted({f for _, f, _ in calls})
        returns = switches = flow_returns = 0
        for thread in {t for t, _, _ in calls}:
            seen: set[str] = set()
            previous = None
            for t, f, _ in calls:
                if t != thread or f == previous:
                    continue
                switches += previous is not None
                returns += f in seen
                flow_returns += f in seen and f.startswith("flows/")
                seen.add(f)
                previous = f
        writes = sum(1 for _, f, name in calls if f.endswith("store/db.py") and name == "write")
        return {"files": files, "returns": returns, "flow_returns": flow_returns, "switches": switches,
                "write_transactions": writes}


def walk() -> dict[str, Any]:
    """One order through this checkout's hub, traced (see the module docstring)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    import ordersync
    from ordersync.adapters.erp.memory import MemoryErp
    from ordersync.api.keys import KeyService
    from ordersync.bootstrap import build_hub
    from ordersync.config import ErpSettings, Settings
    from ordersync.store.schema import orders, outbox

    try:
        from ordersync.server import create_app
    except ImportError:  # before the server module (the API's factory served the pages too)
        from ordersync.api.app import create_app  # type: ignore[no-redef]

    trace = PathTrace(Path(ordersync.__file__).parent)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), erp=[ErpSettings(name="main", kind="memory")])
        hub = build_hub(settings, erps={"main": MemoryErp("main", name="main")})
        try:
            for name, stage in CONSUMERS.items():
                sub = hub.registry[name]
                hub.registry._subs[name] = replace(sub, handler=_in_stage(stage, sub.handler))
            key, _ = KeyService(hub.db, hub.clock).create("path", "portal", ["orders:write"], account_id="C-1001")
            client = TestClient(create_app(hub))
            body = {"external_order_number": "PATH-1", "lines": [
                {"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"},
                {"line_no": 2, "sku": "FIT-ELB-G12-SS", "quantity": "20"}]}
            client.get("/health")  # the app starts outside the trace
            rows = []
            with trace.tracing():
                trace.default = "intake"
                answer = client.post("/v1/orders", json=body, headers={"Authorization": f"Bearer {key}"})
                with hub.db.read() as conn:
                    rows.append(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
                trace.default = "bus"
                for _ in range(50):
                    if hub.worker.drain() == 0:
                        break
                trace.default = None
            assert answer.status_code == 202, answer.text
            with hub.db.read() as conn:
                state = conn.execute(select(orders.c.state)).scalar_one()
                rows.append(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
                by_type = dict(conn.execute(select(outbox.c.type, func.count()).group_by(outbox.c.type)).all())
        finally:
            hub.close()
    return {"state": state, "outbox_rows": {"intake": rows[0], "total": rows[1]}, "outbox_types": by_type,
            **{stage: trace.summary(stage) for stage in STAGES}}


def _in_stage(stage: str, handler: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        _stage.name = stage
        try:
            handler(*args)
        finally:
            _stage.name = None

    return run


def baseline(checkout: Path) -> dict[str, Any]:
    """The walk on another checkout, in a subprocess (its modules, this script)."""
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{checkout}"}
    done = subprocess.run([sys.executable, __file__, "--walk"], env=env, capture_output=True, text=True,
                          timeout=600, cwd=checkout)
    if done.returncode != 0:
        raise SystemExit(f"the baseline walk failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(label: str, r: dict[str, Any]) -> None:
    print(f"{label}: the order ended {r['state']}; outbox rows {r['outbox_rows']['intake']} at intake, "
          f"{r['outbox_rows']['total']} in all")
    for stage in STAGES:
        s = r[stage]
        print(f"  {stage:8} {len(s['files']):3} files  {s['returns']:4} returns  {s['flow_returns']:3} flow returns  "
              f"{s['switches']:5} switches  {s['write_transactions']:2} write transactions")
    path = sorted(set().union(*(r[s]["files"] for s in ("intake", "prepare", "submit"))))
    print(f"  order path (intake + prepare + submit, without the bus): {len(path)} files")


def totals(r: dict[str, Any]) -> dict[str, int]:
    """The order path's counts over intake + prepare + submit (the bus left out), as the ratio line sums them."""
    stages = ("intake", "prepare", "submit")
    return {"files": len(set().union(*(r[s]["files"] for s in stages))),
            "returns": sum(r[s]["returns"] for s in stages),
            "flow_returns": sum(r[s]["flow_returns"] for s in stages),
            "write_transactions": sum(r[s]["write_transactions"] for s in stages),
            "outbox_rows": r["outbox_rows"]["total"]}


def figures(mine: dict[str, Any], before: dict[str, Any] | None, baseline_name: str) -> list[Figure]:
    """This checkout's counts, each next to the baseline checkout's when there is one; no goals."""
    from bench._common import Figure  # not at the top: ``--walk`` runs this file on another checkout's modules
    labels = {"files": ("order path: source files", "files"), "returns": ("order path: returns", ""),
              "flow_returns": ("order path: flow returns", ""),
              "write_transactions": ("order path: write transactions", ""),
              "outbox_rows": ("outbox rows in all", "")}
    now, then = totals(mine), totals(before) if before is not None else None
    return [Figure("order_path", name, now[key], unit, None if then is None else then[key],
                   baseline_name if then is not None else "")
            for key, (name, unit) in labels.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout to walk the same order through")
    parser.add_argument("--short", action="store_true", help="no effect (accepted for bench.all --short)")
    parser.add_argument("--walk", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", action="store_true", help="list the files of each stage")
    args = parser.parse_args()
    if args.walk:
        print(json.dumps(walk()))
        return
    started = time.perf_counter()
    mine = walk()
    report("this checkout", mine)
    if args.files:
        for stage in STAGES:
            print(f"  {stage}: {', '.join(mine[stage]['files'])}")
    before = None
    if args.baseline is not None:
        before = baseline(args.baseline.resolve())
        report(f"baseline {args.baseline}", before)
        if args.files:
            for stage in STAGES:
                print(f"  {stage}: {', '.join(before[stage]['files'])}")
        path = {k: len(set().union(*(r[s]["files"] for s in ("intake", "prepare", "submit"))))
                for k, r in (("mine", mine), ("before", before))}
        stages = ("intake", "prepare", "submit")
        returns = {k: sum(r[s]["returns"] for s in stages) for k, r in (("mine", mine), ("before", before))}
        flows = {k: sum(r[s]["flow_returns"] for s in stages) for k, r in (("mine", mine), ("before", before))}
        print(f"ratio this/baseline (intake + prepare + submit): files {path['mine'] / path['before']:.2f}, "
              f"returns {returns['mine'] / max(1, returns['before']):.2f}, "
              f"flow returns {flows['mine'] / max(1, flows['before']):.2f}")
    print(f"({time.perf_counter() - started:.1f} s)")
    from bench._common import emit

    emit(figures(mine, before, f"baseline {args.baseline}"))


if __name__ == "__main__":
    main()
