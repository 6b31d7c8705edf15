"""Chaos benchmark: every order reaches the ERP exactly once while workers, the ERP and the bus fail.

    .venv/bin/python -m bench.chaos [--orders 2000] [--rate 2] [--seed 1] [--bus nats|embedded]
                                    [--settle-timeout 3600] [--run-dir DIR] [--json] [--short]

All real processes: a trytond with a fresh copy of the demo database, PostgreSQL (127.0.0.1:5432) as
the store, a three-node NATS JetStream cluster on loopback as the bus (``--bus embedded``: the store is
the queue), the hub's API (``ordersync serve --no-worker``) and two ``ordersync worker`` processes.

1. This process is the storefront: it offers ``--orders`` unique orders to ``POST /v1/orders`` at
   ``--rate`` deliveries per second, each with its delivery id as ``Idempotency-Key``; 30 % of them are
   delivered again with the same delivery id and 10 % re-sent with a new one, some shortly after, some
   late. 5xx answers and connection errors are retried with the same delivery id, and counted.
2. Meanwhile, at random times (``--seed``): a worker is SIGKILLed and restarted ten times, the ERP is
   down twice for 20 s (killed and started again; frozen with SIGSTOP), one NATS node is killed and
   restarted, and one is stopped, the newest block file of the stream holding the ``order.*`` events
   truncated on it (as Jepsen did in "NATS 2.12.1", December 2025), and started again.
3. Then it waits until the system settles (``--settle-timeout``) and checks: one hub order per unique
   order and every duplicate answered as one; exactly one confirmed ERP sale per accepted order and
   plant, read from Tryton, with the hub's lines, prices and quantities, none for rejected orders, no
   draft or quotation left (but the quotation of an order held for credit); every order terminal,
   accepted or in an exception a team owns; every outbox event processed by every consumer; every dead
   letter with a reason, an error and an owned integration-failure case.

Prints the faults as they happen, a progress line every few seconds, then the report (``--json``: the
report as one JSON object on the last line). Exit code 0 when every check passed, 1 when one failed.
``--short`` is the form CI runs (tests/e2e/test_chaos.py): 35 orders, 3 worker kills, one 5 s outage.
The run directory keeps every process's log (``logs/``), the ERP's and the NATS nodes' files and
``report.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from tests.support.services import postgres_available

from bench._chaos import ChaosPlan, run_chaos, sigterm_as_interrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI form (small numbers)")
    parser.add_argument("--orders", type=int, help="unique orders (default 2000; --short: 35)")
    parser.add_argument("--rate", type=float, help="deliveries offered per second (default 2; --short: 1.2)")
    parser.add_argument("--seed", type=int, default=1, help="orders, duplicates and fault times (default 1)")
    parser.add_argument("--bus", choices=["nats", "embedded"], default="nats")
    parser.add_argument("--worker-kills", type=int)
    parser.add_argument("--erp-outages", type=int)
    parser.add_argument("--erp-outage-seconds", type=float)
    parser.add_argument("--nats-kills", type=int)
    parser.add_argument("--nats-truncations", type=int)
    parser.add_argument("--settle-timeout", type=float, help="seconds (default 3600; --short: 200)")
    parser.add_argument("--run-dir", type=Path, help="where logs and data go (default: a new temporary directory)")
    parser.add_argument("--keep-store", action="store_true", help="keep the PostgreSQL database (to inspect it)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if not postgres_available():
        print("chaos: PostgreSQL at 127.0.0.1:5432 is not reachable", file=sys.stderr)
        return 2
    changes = {k: v for k, v in {
        "orders": args.orders, "rate": args.rate, "seed": args.seed, "bus": args.bus,
        "worker_kills": args.worker_kills, "erp_outages": args.erp_outages,
        "erp_outage_seconds": args.erp_outage_seconds, "nats_kills": args.nats_kills,
        "nats_truncations": args.nats_truncations, "settle_timeout": args.settle_timeout}.items()
        if v is not None}
    plan = ChaosPlan.short(**changes) if args.short else dataclasses.replace(ChaosPlan(), **changes)
    root = args.run_dir or Path(tempfile.mkdtemp(prefix="ordersync-chaos-"))
    try:
        with sigterm_as_interrupt():
            report = run_chaos(plan, root, keep_store=args.keep_store)
    except KeyboardInterrupt:
        print(f"chaos: interrupted; every process it started is stopped (logs in {root})", file=sys.stderr)
        return 130
    print(json.dumps(report.as_json(), default=str) if args.json else report.text(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
