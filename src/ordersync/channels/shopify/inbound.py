"""Orders in from Shopify, exactly once, whatever the webhooks do.

A webhook delivery is kept before it is answered (:meth:`ShopifyInbound.keep`): one row per Shopify
event (``X-Shopify-Event-Id``), so a retried or duplicated delivery is counted, not kept twice. The worker
then works each event (:meth:`process_waiting`). A webhook only says *that* an order changed: the order
is read again as it is now (``ops.ORDER``) and taken from that, so events that arrive late, twice or out
of order (``orders/paid`` before ``orders/create``) all lead to the same result; one older than what we
last took in (``X-Shopify-Triggered-At`` / the body's ``updated_at``) is recognised as stale and left.

Taking an order maps its purchasing company to the ERP account (:mod:`.orders`) and hands it to the same
intake as every other channel under the channel's business key (the Shopify order id): one hub order,
one ERP sale, however many times it comes. A company that matches no account opens a case and the order
waits for a mapping; it is never guessed. Who the buyer is (as Shopify says) is kept with the waiting
order, so a person can map its company from ``/ops/shopify``; :meth:`ShopifyInbound.map_and_take` records
the mapping and who made it, takes the waiting orders in, and their cases are resolved with a note as
each order goes on.

The reconciliation sweep (:meth:`reconcile`) lists the orders updated since its watermark (minus an
overlap, so orders Shopify indexes late are not lost to the delta window) and takes in any no webhook
brought, and reports what it found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ordersync.canonical.v1 import Account, OrderState
from ordersync.channels.cases import open_integration_case, resolve_integration_case
from ordersync.channels.shopify import contract
from ordersync.channels.shopify import operations as ops
from ordersync.channels.shopify.client import ShopifyClient, ShopifyError, ShopifyUnavailable
from ordersync.channels.shopify.orders import Buyer, Mapped, numeric_id, parse_time, to_order
from ordersync.config import ShopifyShopSettings
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.drift import Finding
from ordersync.domain.errors import IntegrationError, OrdersyncError
from ordersync.domain.order import LineAmendment
from ordersync.flows.deps import FlowDeps
from ordersync.flows.services.amendments import amend_order
from ordersync.runtime.contracts import record as record_drift
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.store import shopify as store
from ordersync.store.db import Database
from ordersync.store.uow import SqlStore, UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.shopify")

#: topics whose body is an order
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/edited",
                          "orders/fulfilled", "orders/partially_fulfilled"})
#: an order in one of these states has goods on the way: a cancellation in Shopify cannot undo it
LEFT_THE_WAREHOUSE = frozenset({OrderState.PARTIALLY_SHIPPED, OrderState.SHIPPED, OrderState.INVOICED,
                                OrderState.CLOSED})
#: how long to wait before looking again at an order whose company is not mapped yet
UNMATCHED_RETRY = dt.timedelta(minutes=30)


@dataclass
class Shop:
    """A configured shop and its client."""

    settings: ShopifyShopSettings
    client: ShopifyClient

    @property
    def name(self) -> str:
        return self.settings.name


@dataclass
class Taken:
    """What taking one Shopify order came to."""

    shopify_id: str
    name: str
    state: str  # taken, duplicate, unmatched, ignored, rejected, cancelled, gone
    order_id: str | None = None
    detail: str = ""


@dataclass
class Sweep:
    """What one reconciliation found."""

    shop: str
    started_at: dt.datetime
    since: dt.datetime
    seen: int = 0
    known: int = 0
    taken: list[str] = field(default_factory=list)  # Shopify order names no webhook had brought
    updated: list[str] = field(default_factory=list)  # known orders with news (cancelled ...)
    unmatched: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # orders that cannot be taken in (each has a case)
    errors: list[str] = field(default_factory=list)
    watermark: dt.datetime | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"shop": self.shop, "started_at": self.started_at.isoformat(), "since": self.since.isoformat(),
                "seen": self.seen, "known": self.known, "taken": self.taken, "updated": self.updated,
                "unmatched": self.unmatched, "ignored": self.ignored, "refused": self.refused, "errors": self.errors,
                "watermark": self.watermark.isoformat() if self.watermark else None,
                "seconds": round(self.seconds, 3)}


@dataclass
class MapOutcome:
    """What :meth:`ShopifyInbound.map_and_take` came to. The mapping is kept whatever happened after it;
    ``failure`` says why the waiting orders could not all be taken in now (Shopify or the ERP away: the
    worker works the woken events again, the next sweep the others)."""

    shop: str
    shopify_id: str
    account_id: str
    events: int = 0  # waiting webhook events woken by the mapping
    worked: int = 0  # events worked now
    taken: list[tuple[str, str]] = field(default_factory=list)  # (Shopify order, hub order) that waited
    waiting: list[str] = field(default_factory=list)  # Shopify orders of the shop still waiting
    failure: Exception | None = None


class AccountDirectory:
    """The ERP accounts orders can be for, read at most every ``ttl`` seconds (the ERP is not asked per
    order)."""

    def __init__(self, read: Callable[[], Sequence[Account]], clock: Clock, ttl: float = 300.0) -> None:
        self._read = read
        self._clock = clock
        self._ttl = ttl
        self._accounts: list[Account] = []
        self._at = -1e18
        self._lock = threading.Lock()

    def accounts(self, *, fresh: bool = False) -> list[Account]:
        with self._lock:
            if fresh or self._clock.monotonic() - self._at > self._ttl:
                self._accounts = list(self._read())
                self._at = self._clock.monotonic()
            return self._accounts


class ShopifyInbound:
    def __init__(self, db: Database, intake: IntakeWriter, clock: Clock, shops: Sequence[Shop],
                 accounts: AccountDirectory, *, cases: CasePolicy | None = None, deps: FlowDeps | None = None,
                 lease_seconds: float = 60.0) -> None:
        self.db = db
        self.intake = intake
        self.clock = clock
        self.shops = {s.name: s for s in shops}
        self.directory = accounts
        self.cases = cases or CasePolicy()
        self.deps = deps  # to cancel orders in the ERP when the buyer cancels in Shopify
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.orders = SqlStore(db, clock)  # hub orders, read to follow cancellations and edits

    # -- the door ---------------------------------------------------------------------------------------

    def keep(self, shop: str, *, topic: str, event_id: str, webhook_id: str, triggered_at: dt.datetime | None,
             body: bytes) -> tuple[str, bool]:
        """Keep a verified delivery (state ``received``); (its event's id, whether it was the first). The
        first delivery of an order event is measured against what the connector reads of it: drift is
        recorded with the event (:mod:`.contract`)."""
        resource = ""
        found: list[Finding] = []
        try:
            payload = json.loads(body)
            if isinstance(payload, dict):
                resource = str(payload.get("admin_graphql_api_id") or "")
            if topic in ORDER_TOPICS:
                found = contract.drift(payload)
        except ValueError:
            pass  # kept as it came; working it will say why it could not be read
        with unit_of_work(self.db, self.clock) as uow:
            kept = store.keep_event(uow.conn, event_key=uuid.uuid4().hex, shop=shop, event_id=event_id or webhook_id,
                                    webhook_id=webhook_id, topic=topic, resource_id=resource[:120],
                                    triggered_at=triggered_at, received_at=self.clock.now(), body=body)
            if found and kept[1]:
                record_drift(uow, self.cases, contract.source(topic), found)
            return kept

    # -- working events -----------------------------------------------------------------------------------

    def process_waiting(self) -> int:
        """Work every kept event nobody is working on (the worker's job); how many."""
        with self.db.read() as conn:
            keys = store.waiting_events(conn, self.clock.now())
        done = 0
        for key in keys:
            if self.process(key) is not None:
                done += 1
        return done

    def process(self, event_key: str) -> str | None:
        now = self.clock.now()
        with self.db.write() as conn:
            if not store.claim_event(conn, event_key, now=now, until=now + self.lease):
                return None
            row = store.event(conn, event_key)
        assert row is not None
        shop = self.shops.get(row["shop"])
        try:
            state, detail, retry = self._work(shop, row)
        except ShopifyUnavailable as exc:
            state, detail = "received", f"Shopify unreachable, trying again: {exc}"
            retry = self.clock.now() + dt.timedelta(seconds=min(600, 5 * 2 ** min(row["attempts"], 7)))
        except IntegrationError as exc:
            state, detail = "received", f"ERP unreachable, trying again: {exc}"
            retry = self.clock.now() + dt.timedelta(seconds=min(600, 5 * 2 ** min(row["attempts"], 7)))
        except (ShopifyError, OrdersyncError, ValueError, KeyError, TypeError) as exc:
            state, detail, retry = "failed", f"{type(exc).__name__}: {exc}", None
            log.warning("Shopify event %s (%s) could not be worked: %s", row["event_id"], row["topic"], exc)
            with unit_of_work(self.db, self.clock) as uow:
                open_integration_case(uow, self.cases, f"Shopify {row['topic']} event {row['event_id']} from "
                                      f"{row['shop']} could not be worked: {exc}",
                                      "Look at the event (ordersync shopify events) and replay it once fixed.")
        with self.db.write() as conn:
            store.finish_event(conn, event_key, state=state, detail=detail, now=self.clock.now(), retry_at=retry)
        return state

    def _work(self, shop: Shop | None, row: Any) -> tuple[str, str, dt.datetime | None]:
        """(state, detail, when to look again) for one kept event."""
        if shop is None:
            return "failed", f"shop {row['shop']} is no longer configured", None
        topic = row["topic"]
        if topic not in ORDER_TOPICS:
            return "ignored", f"topic {topic} is not one the connector works", None
        payload = json.loads(row["body"])
        if not isinstance(payload, dict):
            raise ValueError(f"the body is a JSON {type(payload).__name__}, not an object")
        gid = str(payload.get("admin_graphql_api_id") or "")
        if not gid:
            raise ValueError("the body names no order (admin_graphql_api_id)")
        with self.db.read() as conn:
            link = store.order_link(conn, shop.name, gid)
        # older than what was taken in: stale. The same second is not (Shopify's times are to the second,
        # and two changes within one are read again: reading is harmless, missing an edit is not)
        said_at = parse_time(payload.get("updated_at")) or row["triggered_at"]
        if link is not None and link["order_id"] and link["updated_at"] is not None and said_at is not None \
                and said_at < link["updated_at"] and topic != "orders/cancelled":
            if topic == "orders/paid" and not link["paid"]:
                with self.db.write() as conn:
                    store.save_order(conn, shop=shop.name, shopify_id=gid, name=link["name"], at=self.clock.now(),
                                     source="webhook", state=link["state"], paid=True, detail=link["detail"])
            return "stale", f"order {link['name']} was taken in as it was at {link['updated_at']:%Y-%m-%d %H:%M:%S}", \
                None
        taken = self.take(shop, gid, source="webhook")
        if taken.state == "unmatched":
            return "waiting", taken.detail, self.clock.now() + UNMATCHED_RETRY
        return "processed", f"{taken.name}: {taken.state}" + (f" ({taken.detail})" if taken.detail else ""), None

    def mapping(self, shop: Shop) -> dict[str, str]:
        """Company (location) id -> ERP account: the configuration's, and those set with ``ordersync shopify
        map`` (kept in the store; they win)."""
        with self.db.read() as conn:
            mapped = store.all_state(conn, shop.name, "mapping")
        return {**shop.settings.companies, **{k: str(v) for k, v in mapped.items()}}

    def map_company(self, shop_name: str, shopify_id: str, account_id: str, *, actor: str = "", by: str = "") -> int:
        """Map a Shopify company or company location to an ERP account; the orders waiting for it are
        worked at once. Who mapped it (``actor`` as case histories name people, ``by`` their name) is kept
        beside the mapping. How many events were waiting. Raises ValueError for an account the ERP does
        not have (active), and the ERP's error when its accounts cannot be read; nothing is kept then."""
        shop = self.shops[shop_name]
        account = next((a for a in self.directory.accounts(fresh=True) if a.id == account_id), None)
        if account is None:
            raise ValueError(f"{account_id} is not an active ERP account")
        now = self.clock.now()
        with self.db.write() as conn:
            store.put_state(conn, shop.name, "mapping", shopify_id, account_id, now)
            store.put_state(conn, shop.name, "mapped", shopify_id, {
                "account": account.id, "account_name": account.name, "actor": actor, "by": by or actor,
                "at": now.isoformat(), **_names(store.all_state(conn, shop.name, "waiting").values(), shopify_id)},
                now)
            return store.wake_waiting(conn, shop.name, now)

    def map_and_take(self, shop_name: str, shopify_id: str, account_id: str, *, actor: str, by: str = "",
                     source: str = "ops") -> MapOutcome:
        """Map (:meth:`map_company`), then take in the shop's orders waiting for a mapping now: the woken
        webhook events are worked, and the orders the sweep found unmatched (they wait without an event) are
        read again. What that came to is kept with the mapping (``/ops/shopify`` says it after the redirect).
        Raises what :meth:`map_company` raises (nothing changed then); a failure after the mapping is
        returned in the outcome, not raised."""
        shop = self.shops[shop_name]
        with self.db.read() as conn:
            before = {r["shopify_id"]: r["name"] for r in store.unmatched_orders(conn, shop.name)}
        outcome = MapOutcome(shop.name, shopify_id, account_id)
        outcome.events = self.map_company(shop_name, shopify_id, account_id, actor=actor, by=by)
        try:
            outcome.worked = self.process_waiting() if outcome.events else 0
            with self.db.read() as conn:
                left = [r["shopify_id"] for r in store.unmatched_orders(conn, shop.name)]
            for gid in left:
                self.take(shop, gid, source=source)
        except (ShopifyError, OrdersyncError, TimeoutError) as exc:
            outcome.failure = exc
            log.warning("Shopify %s: %s is mapped to %s, but the waiting orders could not all be taken in now: %s",
                        shop.name, shopify_id, account_id, exc)
        with self.db.write() as conn:
            for gid, name in before.items():
                link = store.order_link(conn, shop.name, gid)
                if link is not None and link["order_id"]:
                    outcome.taken.append((name, str(link["order_id"])))
            outcome.waiting = [str(r["name"]) for r in store.unmatched_orders(conn, shop.name)]
            said = store.get_state(conn, shop.name, "mapped", shopify_id) or {}
            store.put_state(conn, shop.name, "mapped", shopify_id, {
                **said, "taken": outcome.taken, "waiting": len(outcome.waiting),
                "failure": str(outcome.failure)[:300] if outcome.failure else ""}, self.clock.now())
        log.info("Shopify %s: %s mapped to ERP account %s by %s; %d waiting order(s) taken in", shop.name,
                 shopify_id, account_id, by or actor, len(outcome.taken))
        return outcome

    # -- taking an order ------------------------------------------------------------------------------

    def take(self, shop: Shop, gid: str, *, source: str) -> Taken:
        """Read the order as it is now and take it (or its news) in; safe to call any number of times."""
        data = shop.client.execute(ops.ORDER, {"id": gid})
        order = data.get("order")
        if order is None:
            return Taken(gid, numeric_id(gid), "gone", detail="Shopify no longer has this order")
        name = order.get("name") or numeric_id(gid)
        updated_at = parse_time(order.get("updatedAt"))
        cancelled_at = parse_time(order.get("cancelledAt"))
        paid = order.get("displayFinancialStatus") == "PAID"
        with self.db.read() as conn:
            link = store.order_link(conn, shop.name, gid)
        if link is not None and link["order_id"]:
            taken = Taken(gid, name, "duplicate", link["order_id"])
            if cancelled_at is not None and link["cancelled_at"] is None:
                taken = self._cancel(shop, link["order_id"], name, gid)
            elif cancelled_at is None:
                taken.detail = self._follow_edits(shop, order, link["order_id"], name)
            with self.db.write() as conn:
                store.save_order(conn, shop=shop.name, shopify_id=gid, name=name, at=self.clock.now(), source=source,
                                 state="cancelled" if cancelled_at else link["state"], updated_at=updated_at,
                                 cancelled_at=cancelled_at, paid=paid or bool(link["paid"]), detail=taken.detail)
            return taken
        if cancelled_at is not None:
            with unit_of_work(self.db, self.clock) as uow:
                store.save_order(uow.conn, shop=shop.name, shopify_id=gid, name=name, at=self.clock.now(),
                                 source=source, state="cancelled", updated_at=updated_at, cancelled_at=cancelled_at,
                                 paid=paid, detail="cancelled in Shopify before the hub took it in")
                self._waiting_over(uow, shop, gid, f"Shopify order {name} was cancelled by the buyer before it "
                                                   "was taken in: nothing to map for it.")
            return Taken(gid, name, "cancelled", detail="cancelled before it was taken in")
        mapping = self.mapping(shop)
        mapped = to_order(order, channel=shop.settings.channel_name, order_id=uuid.uuid4().hex,
                          accounts=self.directory.accounts(), mapping=mapping)
        if mapped.order is None and mapped.buyer is not None and mapped.match is not None \
                and mapped.match.account is None:  # maybe a new ERP account: read them again before a case
            mapped = to_order(order, channel=shop.settings.channel_name, order_id=uuid.uuid4().hex,
                              accounts=self.directory.accounts(fresh=True), mapping=mapping)
        if mapped.order is None:
            state = "ignored" if mapped.ignored else ("unmatched" if mapped.match and mapped.match.account is None
                                                      else "rejected")
            detail = mapped.ignored or "; ".join(mapped.problems)
            self._not_taken(shop, gid, name, state, detail, source, updated_at, paid, mapped.buyer)
            return Taken(gid, name, state, detail=detail)
        receipt = self.intake.submit(mapped.order, scope=f"shopify:{shop.name}").result(timeout=60)
        with unit_of_work(self.db, self.clock) as uow:
            store.save_order(uow.conn, shop=shop.name, shopify_id=gid, name=name, at=self.clock.now(), source=source,
                             state="taken", order_id=receipt.order_id, account_id=mapped.order.account_id,
                             updated_at=updated_at, paid=paid,
                             detail=f"account {mapped.order.account_id} by {mapped.match.how if mapped.match else ''}")
            self._waiting_over(uow, shop, gid, f"Shopify order {name} is taken in as hub order {receipt.order_id} "
                                               f"for ERP account {mapped.order.account_id}.", mapped)
        if not receipt.duplicate:
            log.info("Shopify order %s (%s) taken in as %s for %s", name, shop.name, receipt.order_id,
                     mapped.order.account_id)
        return Taken(gid, name, "duplicate" if receipt.duplicate else "taken", receipt.order_id)

    def _not_taken(self, shop: Shop, gid: str, name: str, state: str, detail: str, source: str,
                   updated_at: dt.datetime | None, paid: bool, buyer: Buyer | None) -> None:
        """Record why; an unmatched company or a refused order opens one case (not one per delivery). The
        buyer of an unmatched order is kept beside it (for ``/ops/shopify``) with its case."""
        with unit_of_work(self.db, self.clock) as uow:
            link = store.order_link(uow.conn, shop.name, gid)
            store.save_order(uow.conn, shop=shop.name, shopify_id=gid, name=name, at=uow.now(), source=source,
                             state=state, updated_at=None, paid=paid, detail=detail)
            if state != "unmatched":
                self._waiting_over(uow, shop, gid, f"Shopify order {name} no longer waits for a mapping: it is "
                                                   f"{state} ({detail}).")
            if state == "ignored" or (link is not None and link["state"] == state):
                if state == "unmatched" and buyer is not None:
                    self._keep_waiting(uow, shop, gid, buyer, detail, None)
                return
            if state == "unmatched":
                case_id = open_integration_case(
                    uow, self.cases, f"Shopify order {name} ({shop.name}) waits: {detail}",
                    f"Map the company on /ops/shopify, set its external id in Shopify to its ERP account, or map it "
                    f"with `ordersync shopify map {shop.name} {buyer.location_id if buyer else gid} <account>`; the "
                    "order is taken in then.")
                if buyer is not None:
                    self._keep_waiting(uow, shop, gid, buyer, detail, case_id)
            else:
                open_integration_case(uow, self.cases, f"Shopify order {name} ({shop.name}) cannot be taken in: "
                                      f"{detail}", "Correct the order in Shopify or with the buyer; it is read "
                                      "again on its next change or the next reconciliation.")

    def _keep_waiting(self, uow: UnitOfWork, shop: Shop, gid: str, buyer: Buyer, reason: str,
                      case_id: str | None) -> None:
        """Keep who the waiting order's buyer is (as Shopify says now), why it waits and its case."""
        kept = store.get_state(uow.conn, shop.name, "waiting", gid) or {}
        value = {**dataclasses.asdict(buyer), "reason": reason, "case_id": case_id or kept.get("case_id")}
        if value != kept:
            store.put_state(uow.conn, shop.name, "waiting", gid, value, uow.now())

    def _waiting_over(self, uow: UnitOfWork, shop: Shop, gid: str, outcome: str, mapped: Mapped | None = None) -> None:
        """The order waited for a mapping and no longer does: forget its buyer and resolve its case, in the
        name of whoever mapped the company when a mapping matched it (else the channel's), with a note."""
        kept = store.get_state(uow.conn, shop.name, "waiting", gid)
        if kept is None:
            return
        store.delete_state(uow.conn, shop.name, "waiting", gid)
        if not kept.get("case_id"):
            return
        actor, note = f"shopify:{shop.name}", outcome
        buyer, match = (mapped.buyer, mapped.match) if mapped is not None else (None, None)
        if buyer is not None and match is not None and match.account is not None:
            who = None
            for key in (buyer.location_id, buyer.company_id) if match.how == "mapping" else ():
                who = store.get_state(uow.conn, shop.name, "mapped", key) if key else None
                if who:
                    break  # the location's mapping wins over the company's, as in matching
            if who and who.get("account") == match.account.id and who.get("actor"):
                actor = str(who["actor"])
                note = (f"{who.get('by') or actor} mapped {buyer.company_name} at {buyer.location_name} to ERP account "
                        f"{match.account.id} ({match.account.name}). {outcome}")
            else:
                note = f"{buyer.company_name} at {buyer.location_name} is matched by {match.how}. {outcome}"
        resolve_integration_case(uow, str(kept["case_id"]), actor=actor, comment=note)

    def _cancel(self, shop: Shop, order_id: str, name: str, gid: str) -> Taken:
        """The buyer cancelled in Shopify: cancel in the ERP unless the goods are on their way (a case)."""
        with self.orders.reading() as reader:  # a read: no write lock on the event path
            record = reader.orders.find(order_id)
        if record is None:
            return Taken(gid, name, "cancelled", order_id, "no such hub order")
        refusal = ""
        if record.state in LEFT_THE_WAREHOUSE:
            refusal = f"the order has already shipped ({record.state.value})"
        elif record.state in (OrderState.CANCELLED, OrderState.REJECTED):
            return Taken(gid, name, "cancelled", order_id, f"the hub order is {record.state.value}")
        elif self.deps is None:
            refusal = "cancellations cannot be applied here (no ERP)"
        if not refusal:
            try:
                outcome = amend_order(self.deps, order_id,  # type: ignore[arg-type]
                                      [LineAmendment(line_no=line.line_no, cancel=True) for line in record.lines],
                                      account_id=record.order.account_id, actor=f"shopify:{shop.name}")
                if outcome.refused:
                    refusal = "; ".join(f"line {r.line_no}: {r.reason}" for r in outcome.refused)
            except IntegrationError:
                raise  # the ERP is away: the event is worked again later
            except OrdersyncError as exc:
                refusal = str(exc)
        if refusal:
            with unit_of_work(self.db, self.clock) as uow:
                open_integration_case(uow, self.cases, f"Shopify order {name} was cancelled by the buyer but the "
                                      f"ERP order cannot be cancelled: {refusal}",
                                      "Agree with the buyer (a return, or deliver as ordered) and answer in Shopify.",
                                      order_id=order_id)
            return Taken(gid, name, "cancelled", order_id, f"cancellation refused: {refusal}")
        return Taken(gid, name, "cancelled", order_id, "cancelled in the ERP")

    def _follow_edits(self, shop: Shop, order: dict[str, Any], order_id: str, name: str) -> str:
        """An order edited in Shopify after it was taken (a quantity changed, a line removed): the ERP
        decides, through the same amendment as every channel's; what cannot be amended (a line added, the
        ERP refusing) opens a case — the hub never silently keeps a different order than the buyer's."""
        wanted: dict[str, Decimal] = {}
        for item in (order.get("lineItems") or {}).get("nodes") or []:
            sku = (item.get("sku") or (item.get("variant") or {}).get("sku") or "").strip()
            if sku:
                wanted[sku] = wanted.get(sku, Decimal(0)) + Decimal(item.get("currentQuantity", item.get("quantity"))
                                                                    or 0)
        with self.orders.reading() as reader:  # a read: no write lock on the event path
            record = reader.orders.find(order_id)
        if record is None or record.state in (OrderState.CANCELLED, OrderState.REJECTED) \
                or record.state in LEFT_THE_WAREHOUSE:
            return ""  # after shipping, Shopify's quantities fall with refunds: returns answer those, not edits
        ordered = record.ordered  # as it stands: amended quantities, cancelled lines at 0 (priced or not yet)
        lines_of: dict[str, list[int]] = {}
        for line in record.order.lines:  # the SKUs as Shopify sent them (a line without one is left alone)
            if line.sku:
                lines_of.setdefault(line.sku, []).append(line.line_no)
        changes: list[LineAmendment] = []
        unclear: list[str] = []
        for sku, numbers in lines_of.items():
            want, now = wanted.get(sku, Decimal(0)), sum((ordered[n] for n in numbers), Decimal(0))
            if want == now:
                continue
            if len(numbers) > 1:  # one SKU on several lines: which one changed cannot be told
                unclear.append(sku)
            elif want <= 0:
                changes.append(LineAmendment(line_no=numbers[0], cancel=True))
            else:
                changes.append(LineAmendment(line_no=numbers[0], quantity=want))
        added = sorted(sku for sku, quantity in wanted.items() if sku not in lines_of and quantity > 0)
        if unclear:
            added += [f"{sku} (on several lines)" for sku in unclear]
        if not changes and not added:
            return ""
        refusal = f"lines changed in Shopify ({', '.join(added)}) cannot be followed in the ERP order" if added else ""
        deps = self.deps
        if changes and deps is None:
            refusal = refusal or "changes cannot be applied here (no ERP)"
        elif changes and deps is not None:
            try:
                outcome = amend_order(deps, order_id, changes, account_id=record.order.account_id,
                                      actor=f"shopify:{shop.name}")
                if outcome.refused:
                    refusal = "; ".join(filter(None, [refusal, *(f"line {r.line_no}: {r.reason}"
                                                                 for r in outcome.refused)]))
            except IntegrationError:
                raise  # the ERP is away: the event is worked again later
            except OrdersyncError as exc:
                refusal = "; ".join(filter(None, [refusal, str(exc)]))
        if refusal:
            with unit_of_work(self.db, self.clock) as uow:
                open_integration_case(uow, self.cases, f"Shopify order {name} was edited after it was taken in, "
                                      f"and the ERP order cannot follow: {refusal}",
                                      "Agree with the buyer and edit the order in Shopify or the ERP so that "
                                      "they match.", order_id=order_id)
            return f"edit not applied: {refusal}"
        return f"edited: {len(changes)} line(s) amended in the ERP"

    # -- reconciliation -------------------------------------------------------------------------------

    def reconcile(self, shop_name: str, *, since: dt.datetime | None = None) -> Sweep:
        """List the orders updated since the watermark (minus the overlap) and take in what no webhook
        brought; the watermark moves to the newest ``updatedAt`` seen. The report is kept for /ops."""
        shop = self.shops[shop_name]
        started, clock0 = self.clock.now(), time.perf_counter()
        with self.db.read() as conn:
            mark = store.get_state(conn, shop.name, "watermark", "reconcile")
        overlap = dt.timedelta(minutes=shop.settings.overlap_minutes)
        if since is None:
            last = parse_time(mark)
            since = last - overlap if last is not None else started - dt.timedelta(days=1)
        sweep = Sweep(shop.name, started, since)
        newest = parse_time(mark) if mark else None
        query = f"updated_at:>='{since.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}'"
        for node in shop.client.pages(ops.ORDERS_UPDATED, {"query": query}, ("orders",), page_size=100):
            sweep.seen += 1
            gid, name = node["id"], node.get("name") or numeric_id(node["id"])
            updated = parse_time(node.get("updatedAt"))
            if updated is not None and (newest is None or updated > newest):
                newest = updated
            with self.db.read() as conn:
                link = store.order_link(conn, shop.name, gid)
            cancelled = node.get("cancelledAt") is not None
            news = (cancelled and link is not None and link["cancelled_at"] is None) or (
                link is not None and updated is not None and link["updated_at"] is not None
                and updated > link["updated_at"])  # a change whose webhook did not come (an edit ...)
            if link is not None and link["order_id"] and not news:
                sweep.known += 1
                continue
            if link is not None and link["state"] == "ignored":
                sweep.known += 1
                continue
            try:
                taken = self.take(shop, gid, source="reconciliation")
            except (ShopifyError, OrdersyncError) as exc:
                sweep.errors.append(f"{name}: {exc}")
                continue
            if taken.state == "duplicate":  # known: its news followed, or taken in meanwhile by a webhook
                if news:
                    sweep.updated.append(f"{name}: {taken.detail}" if taken.detail else name)
                else:
                    sweep.known += 1
                continue
            bucket = {"taken": sweep.taken, "cancelled": sweep.updated,
                      "unmatched": sweep.unmatched, "ignored": sweep.ignored}.get(taken.state, sweep.refused)
            bucket.append(name if taken.state != "rejected" else f"{name}: {taken.detail}")
        sweep.watermark = min(newest, started) if newest else None
        sweep.seconds = time.perf_counter() - clock0
        with self.db.write() as conn:
            if sweep.watermark is not None and not sweep.errors:
                store.put_state(conn, shop.name, "watermark", "reconcile", sweep.watermark.isoformat(),
                                self.clock.now())
            store.put_state(conn, shop.name, "report", "reconcile", sweep.as_dict(), self.clock.now())
        if sweep.taken:
            log.warning("Shopify reconciliation (%s): %d order(s) no webhook brought were taken in: %s", shop.name,
                        len(sweep.taken), ", ".join(sweep.taken))
        else:
            log.info("Shopify reconciliation (%s): %d order(s) updated since %s, nothing missed", shop.name,
                     sweep.seen, since.isoformat())
        return sweep


def _names(waiting: Any, shopify_id: str) -> dict[str, str]:
    """The company and location names a mapped id stands for, as the waiting orders' buyers say."""
    for kept in waiting:
        if shopify_id in (kept.get("location_id"), kept.get("company_id")):
            location = kept.get("location_name", "") if kept.get("location_id") == shopify_id else ""
            return {"company": str(kept.get("company_name", "")), "location": str(location)}
    return {}
