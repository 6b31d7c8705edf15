"""ERP → Shopify with the Shopify double and the in-memory ERP: contract prices in one catalog per
account (quantity breaks where the ERP has them, a second push almost free), stock per location by
compare-and-set (a sale between our read and our write is read again; two writers racing a seller never
leave it wrong), payment terms from the ERP's."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import Account
from ordersync.channels.shopify.client import CostBudget, ShopifyClient
from ordersync.channels.shopify.inbound import AccountDirectory, Shop
from ordersync.channels.shopify.sync import ShopifySync, template_for
from ordersync.config import ShopifyShopSettings
from ordersync.devkit.shopify import ShopifyDouble
from ordersync.domain.clock import FakeClock
from ordersync.ports.erp import Erps
from ordersync.store import shopify as store
from ordersync.store.db import Database

SKUS = ["BRG-6204-2RS", "FIT-ELB-G12-SS", "MOT-IE3-0.75-4P", "SEN-PX-M12-NPN", "HOS-PU-8X6", "SEL-OR-NBR-KIT"]
Data = dict[str, Any]


# -- the pieces ------------------------------------------------------------------------------------------

class OneErp:
    """The in-memory ERP as the hub's ERPs (what the sync asks of them)."""

    def __init__(self, erp: MemoryErp) -> None:
        self.one = erp

    def names(self) -> list[str]:
        return [self.one.name]

    def erp(self, name: str) -> MemoryErp:
        return self.one

    def erp_name_for(self, account_id: str) -> str:
        return self.one.name

    def default_name(self) -> str:
        return self.one.name

    def for_account(self, account_id: str) -> MemoryErp:
        return self.one

    def in_lane(self, lane: Any) -> OneErp:
        return self


class Spy(httpx.BaseTransport):
    """The double's transport, recording each request's operation and variables; ``before`` runs just
    before a request of that mutation reaches the shop (another writer's move, a crash)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, Data]] = []
        self.before: dict[str, Callable[[Data], None]] = {}
        self.after: dict[str, Callable[[Data], None]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name, variables = "", {}
        if request.method == "POST":
            body = json.loads(request.content)
            name = body["query"].split("(")[0].split("{")[0].split()[-1]
            variables = body.get("variables") or {}
            with self._lock:
                self.sent.append((name, variables))
            if name in self.before:
                self.before[name](variables)
        response = self.inner.handle_request(request)
        if name in self.after:
            response.read()
            self.after[name](variables)
        return response

    def named(self, name: str) -> list[Data]:
        with self._lock:
            return [v for n, v in self.sent if n == name]


def with_terms(accounts: list[Account], terms: dict[str, str]) -> list[Account]:
    """The accounts as an ERP that knows payment terms gives them."""
    if "payment_terms" in Account.model_fields:
        return [a.model_copy(update={"payment_terms": terms.get(a.id)}) for a in accounts]
    return [_Termed(a, terms.get(a.id)) for a in accounts]  # type: ignore[misc]


class _Termed:
    def __init__(self, account: Account, terms: str | None) -> None:
        self._a, self.payment_terms = account, terms

    def __getattr__(self, name: str) -> Any:
        return getattr(self._a, name)


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite store, copied for each test (migrating costs more than the tests)."""
    path = tmp_path_factory.mktemp("store") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def db(migrated: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "ordersync.db"
    shutil.copy(migrated, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def erp(clock: FakeClock) -> MemoryErp:
    return MemoryErp("main", name="main", clock=clock.now)


class World:
    """A shop (the double) selling the ERP's SKUs to two ERP accounts' companies, and the hub's side."""

    def __init__(self, db: Database, erp: MemoryErp, clock: FakeClock, **settings: Any) -> None:
        self.db, self.erp, self.clock = db, erp, clock
        self.d = ShopifyDouble(plan="plus")
        self.north = self.d.add_location("Hamburg")
        self.south = self.d.add_location("Augsburg")
        self.variants = {sku: self.d.add_product(sku, f"Product {sku}", "99.00") for sku in SKUS}
        self.d.add_product("SHOP-ONLY-1", "Only in the shop", "5.00")
        self.items = {sku: self.d.variant_by_sku(sku)["inventory_item_id"] for sku in SKUS}
        self.rheinland = self.d.add_company("Rheinland Industrial Supply", "C-1001", [
            {"name": "Köln", "external_id": "RIS-KOE"}, {"name": "Düsseldorf", "external_id": "RIS-DUS"}])
        self.alpen = self.d.add_company("Alpen Field Service", None, [{"name": "Innsbruck", "external_id": "C-1002"}])
        self.stranger = self.d.add_company("Unknown Trading", "X-999")
        self.terms: dict[str, str] = {}
        self.settings = ShopifyShopSettings(name="kestrel", domain=self.d.shop, token=self.d.token, plan="plus",
                                            locations={"PLANT-N": self.north, "PLANT-S": self.south},
                                            **{"quantity_breaks": [10, 25, 100, 500], **settings})
        self.transport = Spy(self.d.transport())
        self.directory = AccountDirectory(lambda: with_terms(self.erp.accounts(), self.terms), clock, ttl=-1)
        self.sync = self.new_sync()

    def new_sync(self) -> ShopifySync:
        client = ShopifyClient(self.d.shop, self.d.token, plan="plus", transport=self.transport,
                               budget=CostBudget(1000, 10000))
        erps: Erps = OneErp(self.erp)  # type: ignore[assignment]
        return ShopifySync(Shop(self.settings, client), erps, self.db, self.clock, self.directory)

    def erp_price(self, account: str, sku: str, quantity: int = 1) -> Decimal:
        quote = self.erp.prices(account, [(sku, Decimal(quantity))])[0]
        return quote.unit_price.quantize(Decimal("0.01"), ROUND_HALF_UP)

    def atp(self, sku: str, plant: str) -> int:
        return max(0, int(next(p.available_to_promise for p in self.erp.availability([sku]) if p.plant == plant)))

    def mutations(self) -> dict[str, int]:
        return dict(self.d.mutations_by_name)


@pytest.fixture
def world(db: Database, erp: MemoryErp, clock: FakeClock) -> World:
    return World(db, erp, clock)


# -- prices ----------------------------------------------------------------------------------------------

def test_each_account_gets_one_catalog_with_its_contract_prices_and_quantity_breaks(world: World) -> None:
    report = world.sync.push_prices()

    catalogs = {c["title"]: c for c in world.d.catalogs}
    assert sorted(catalogs) == ["ordersync C-1001", "ordersync C-1002"]
    rheinland, alpen = catalogs["ordersync C-1001"], catalogs["ordersync C-1002"]
    assert sorted(rheinland["company_location_ids"]) == sorted(world.rheinland["locations"])
    assert alpen["company_location_ids"] == world.alpen["locations"]
    assert rheinland["status"] == "ACTIVE"
    for account, catalog in (("C-1001", rheinland), ("C-1002", alpen)):
        for sku, variant in world.variants.items():
            assert world.d.fixed_price(catalog["price_list_id"], variant) == world.erp_price(account, sku), sku
    # the ERP sells BRG-6204-2RS to C-1001 for less from 100: a break there, none at 10/25 (same price)
    bearing = world.variants["BRG-6204-2RS"]
    assert world.d.quantity_breaks(rheinland["price_list_id"], bearing) == [
        (100, world.erp_price("C-1001", "BRG-6204-2RS", 100))]
    assert world.erp_price("C-1001", "BRG-6204-2RS", 100) < world.erp_price("C-1001", "BRG-6204-2RS")
    assert world.d.quantity_breaks(alpen["price_list_id"], bearing) == []
    # 22.908 in the ERP: Shopify gets cents
    assert world.d.fixed_price(alpen["price_list_id"], world.variants["SEN-PX-M12-NPN"]) == Decimal("22.91")

    part = report["accounts"]["C-1001"]
    assert part["locations"] == 2 and part["skus"] == len(SKUS) and part["changed"] == len(SKUS)
    assert part["breaks"] == 1 and part["not_in_erp"] == 1 and part["not_in_shop"] == 50 - len(SKUS)
    assert part["errors"] == [] and part["not_in_catalog"] == []
    assert len(report["unmatched"]) == 1 and "Unknown Trading" in report["unmatched"][0]
    # prices go in one call per price list (250 a call), not one per variant
    assert world.mutations()["priceListFixedPricesAdd"] == 2
    with world.db.read() as conn:
        kept = store.get_state(conn, "kestrel", "report", "prices")
        link = store.get_state(conn, "kestrel", "catalog", "C-1001")
    assert kept["at"] and kept["accounts"]["C-1001"]["changed"] == len(SKUS)
    assert link["catalog"] == rheinland["id"] and link["price_list"] == rheinland["price_list_id"]


def test_a_second_push_makes_no_writes_and_a_changed_price_only_its_own(world: World) -> None:
    world.sync.push_prices()
    before = world.mutations()

    again = world.sync.push_prices()

    assert again["calls"] <= 3, again  # the company locations, and the variants in one bulk read (run, status)
    writes = {k: v for k, v in world.mutations().items() if k != "bulkOperationRunQuery"}  # a bulk read is no write
    assert writes == {k: v for k, v in before.items() if k != "bulkOperationRunQuery"}
    assert again["accounts"]["C-1001"]["changed"] == 0 and again["accounts"]["C-1001"]["unchanged"] == len(SKUS)

    world.erp.set_price("C-1001", "SEL-OR-NBR-KIT", Decimal("27.50"))
    third = world.sync.push_prices()

    assert third["accounts"]["C-1001"]["changed"] == 1 and third["accounts"]["C-1002"]["changed"] == 0
    price_list = next(c["price_list_id"] for c in world.d.catalogs if c["title"] == "ordersync C-1001")
    assert world.d.fixed_price(price_list, world.variants["SEL-OR-NBR-KIT"]) == Decimal("27.50")
    assert len(world.d.catalogs) == 2 and len(world.d.price_lists) == 2


def test_a_lost_catalog_link_is_found_again_on_the_company_locations(world: World) -> None:
    world.sync.push_prices(accounts=["C-1001"])
    with world.db.write() as conn:
        store.put_state(conn, "kestrel", "catalog", "C-1001", {}, world.clock.now())

    report = world.sync.push_prices(accounts=["C-1001"])

    assert len(world.d.catalogs) == 1 and len(world.d.price_lists) == 1
    assert report["accounts"]["C-1001"]["catalog"] == world.d.catalogs[0]["id"]
    assert list(report["accounts"]) == ["C-1001"]


def test_prices_in_another_currency_than_the_shops_are_reported_not_pushed(db: Database, erp: MemoryErp,
                                                                            clock: FakeClock) -> None:
    world = World(db, erp, clock, currency="USD")

    report = world.sync.push_prices(accounts=["C-1001"])

    assert "in EUR" in report["accounts"]["C-1001"]["errors"][0]
    assert "priceListFixedPricesAdd" not in world.mutations()


# -- stock -----------------------------------------------------------------------------------------------

def test_stock_lands_per_location_and_a_second_push_writes_nothing(world: World) -> None:
    world.erp.set_stock("MOT-IE3-0.75-4P", "PLANT-N", Decimal(0))

    report = world.sync.push_stock()

    for sku in SKUS:
        assert world.d.available(world.items[sku], world.north) == world.atp(sku, "PLANT-N"), sku
        assert world.d.available(world.items[sku], world.south) == world.atp(sku, "PLANT-S"), sku
    assert report["items"] == 2 * len(SKUS) and report["not_in_erp"] == 1
    assert report["changed"] + report["unchanged"] == 2 * len(SKUS) and report["stale_retries"] == 0
    assert world.mutations()["inventorySetQuantities"] == 1  # 11 levels, one call
    writes = world.transport.named("InventorySet")[0]
    assert writes["input"]["reason"] == "correction" and writes["input"]["name"] == "available"
    assert writes["input"]["referenceDocumentUri"] == f"ordersync://stock/{report['push']}"
    assert all(q["changeFromQuantity"] == 0 for q in writes["input"]["quantities"])
    assert "ItemLevels" not in {n for n, _ in world.transport.sent}  # a full push reads in bulk

    again = world.sync.push_stock()

    assert again["changed"] == 0 and again["unchanged"] == 2 * len(SKUS)
    assert world.mutations()["inventorySetQuantities"] == 1
    with world.db.read() as conn:
        assert store.get_state(conn, "kestrel", "report", "stock")["push"] == again["push"]


def test_a_partial_push_reads_only_its_items(world: World) -> None:
    report = world.sync.push_stock(["SEL-OR-NBR-KIT"])

    assert report["items"] == 2 and report["changed"] == 2
    assert world.d.available(world.items["SEL-OR-NBR-KIT"], world.north) == world.atp("SEL-OR-NBR-KIT", "PLANT-N")
    assert world.d.available(world.items["BRG-6204-2RS"], world.north) == 0  # not asked for
    assert "BulkRun" not in {n for n, _ in world.transport.sent}


def test_a_sale_between_our_read_and_our_write_is_read_again_and_the_erp_asked_again(world: World) -> None:
    sku, item = "SEL-OR-NBR-KIT", world.items["SEL-OR-NBR-KIT"]
    world.d.set_available(item, world.north, 12)
    world.d.set_available(item, world.south, world.atp(sku, "PLANT-S"))
    moved: list[bool] = []

    def sale_and_new_stock(variables: Data) -> None:
        if not moved:  # once: a buyer takes 3 in Shopify, the ERP books a receipt meanwhile
            moved.append(True)
            world.d.sell(item, world.north, 3)
            world.erp.set_stock(sku, "PLANT-N", Decimal(55))

    world.transport.before["InventorySet"] = sale_and_new_stock

    report = world.sync.push_stock([sku])

    assert world.d.available(item, world.north) == world.atp(sku, "PLANT-N") == 55
    assert report["stale_retries"] == 1 and report["changed"] == 1
    first, second = [w["input"]["quantities"] for w in world.transport.named("InventorySet")]
    assert first == [{"inventoryItemId": item, "locationId": world.north, "quantity": 40, "changeFromQuantity": 12}]
    assert second == [{"inventoryItemId": item, "locationId": world.north, "quantity": 55, "changeFromQuantity": 9}]
    assert world.transport.named("InventorySet")[0]["key"] != world.transport.named("InventorySet")[1]["key"]


def test_a_level_that_never_stops_changing_is_left_for_the_next_push(world: World) -> None:
    item = world.items["HOS-PU-8X6"]
    world.transport.before["InventorySet"] = lambda variables: world.d.sell(item, world.north, 1)

    report = world.sync.push_stock(["HOS-PU-8X6"])

    assert report["left_stale"] == 2 and report["stale_retries"] == 6 and report["changed"] == 0
    assert world.d.available(item, world.north) == -6  # only the sales: nothing written over them


def test_two_writers_racing_a_seller_never_leave_stock_wrong(world: World) -> None:
    sku, item = "BRG-6204-2RS", world.items["BRG-6204-2RS"]
    first, second = world.sync, world.new_sync()
    world.sync.push_stock([sku])
    # a little time between reading and writing, as over the internet: sales land in it
    world.transport.before["InventorySet"] = lambda variables: time.sleep(0.002)
    selling = threading.Event()
    selling.set()
    problems: list[BaseException] = []
    stale: list[int] = []

    def seller() -> None:
        try:
            for n in range(60):
                world.d.sell(item, world.north if n % 3 else world.south, 1)
                if n % 20 == 0:  # the ERP moves too (a receipt, a confirmed order)
                    world.erp.set_stock(sku, "PLANT-N", Decimal(400 + n))
                time.sleep(0.001)
        except BaseException as exc:  # pragma: no cover - reported below
            problems.append(exc)
        finally:
            selling.clear()

    def writer(sync: ShopifySync) -> None:
        try:
            while selling.is_set():
                stale.append(sync.push_stock([sku])["stale_retries"])
            stale.append(sync.push_stock([sku])["stale_retries"])  # once more after the last sale
        except BaseException as exc:  # pragma: no cover - reported below
            problems.append(exc)

    threads = [threading.Thread(target=seller), threading.Thread(target=writer, args=(first,)),
               threading.Thread(target=writer, args=(second,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not problems, problems

    assert world.d.available(item, world.north) == world.atp(sku, "PLANT-N")
    assert world.d.available(item, world.south) == world.atp(sku, "PLANT-S")
    writes = [q for w in world.transport.named("InventorySet") for q in w["input"]["quantities"]]
    assert writes and all(isinstance(q["changeFromQuantity"], int) for q in writes)  # never a blind write
    assert sum(stale) > 0  # the race was run: writes were refused as stale and done again


# -- payment terms ---------------------------------------------------------------------------------------

def test_payment_terms_follow_the_erp_and_unknown_terms_are_reported(world: World) -> None:
    world.terms = {"C-1001": "Net 30", "C-1002": "net 45 days"}

    report = world.sync.push_payment_terms()

    for location in world.rheinland["locations"]:
        assert world.d.payment_terms(location)["name"] == "Net 30"  # type: ignore[index]
    assert world.d.payment_terms(world.alpen["locations"][0])["name"] == "Net 45"  # type: ignore[index]
    assert len(report["updated"]) == 3 and report["unknown"] == [] and len(report["unmatched"]) == 1

    world.terms = {"C-1001": "Net 30", "C-1002": "Prepayment"}
    again = world.sync.push_payment_terms()

    assert again["updated"] == [] and again["unchanged"] == 2
    assert "Prepayment" in again["unknown"][0]
    assert world.mutations()["companyLocationUpdate"] == 3
    with world.db.read() as conn:
        assert store.get_state(conn, "kestrel", "report", "terms")["unchanged"] == 2


def test_terms_are_found_by_name_then_by_days() -> None:
    templates = [{"id": "t30", "name": "Net 30", "paymentTermsType": "NET", "dueInDays": 30},
                 {"id": "t0", "name": "Due on receipt", "paymentTermsType": "RECEIPT", "dueInDays": None}]
    assert template_for("net 30", templates) == templates[0]
    assert template_for("30 days net", templates) == templates[0]
    assert template_for("Due on  receipt", templates) == templates[1]
    assert template_for("Net 14", templates) is None
    assert template_for("cash", templates) is None
