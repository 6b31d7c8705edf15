"""ERP → Shopify, one shop at a time: contract prices into each company's catalog, available stock per
location, payment terms. The ERP is the system of record; Shopify is told what the ERP says.

- **Prices** (:meth:`ShopifySync.push_prices`): every Shopify company location matched to an ERP account
  (:func:`~ordersync.channels.shopify.orders.match_account`: mapping, external id, tax id) buys from ONE
  catalog and price list per account (created once, remembered in the store, kind ``catalog``). Every
  SKU that has a Shopify variant (by SKU, never by title) gets the ERP's contract price at quantity 1 as
  a fixed price, and a quantity break at each ``quantity_breaks`` quantity where the ERP's unit price is
  lower. What was pushed is remembered as a hash per variant (kind ``prices``), so a repeated push
  sends only what changed.
- **Stock** (:meth:`ShopifySync.push_stock`): available-to-promise per plant, floored at 0, becomes
  Shopify's ``available`` at the plant's location. Each write is a compare-and-set on what we read
  (``changeFromQuantity``); when someone else changed a level in between (a sale in Shopify, another
  writer), Shopify applies nothing of that call (``CHANGE_FROM_QUANTITY_STALE``): those items are read
  again, the ERP asked again, and the call retried, a bounded number of rounds. We never write over a
  value we did not read.
- **Payment terms** (:meth:`ShopifySync.push_payment_terms`): the account's ERP terms ("Net 30") become
  the company location's payment terms template, by name, else by the days in it.

Each push returns a report and keeps it (kind ``report``) for /ops. userErrors are reported, not raised;
an unreachable Shopify or ERP raises (the scheduler tries again at its next turn).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from ordersync.canonical.v1 import Account, StockPosition
from ordersync.channels.shopify import operations as ops
from ordersync.channels.shopify.inbound import AccountDirectory, Shop
from ordersync.channels.shopify.orders import Buyer, match_account
from ordersync.domain.clock import Clock
from ordersync.ports.erp import Erps, UnknownItem
from ordersync.store import shopify as store
from ordersync.store.db import Database

log = logging.getLogger("ordersync.shopify")

#: Shopify's most quantities / prices per inventorySetQuantities / priceListFixedPricesAdd call
SHOPIFY_BATCH = 250
#: how often a long price push records what it has pushed so far (the record is one JSON map per list)
SAVE_SECONDS = 5.0
#: items per ERP prices() / availability() call
ERP_BATCH = 500
#: rounds of re-reading and retrying after a stale compare-and-set before an item is left for the next push
STALE_ROUNDS = 5
#: namespace of the idempotency keys of stock writes (uuid5 of a hash of the call)
KEY_NAMESPACE = uuid.UUID("6f1c1d2e-9a7b-5c4d-8e3f-2a1b0c9d8e7f")
STALE = "CHANGE_FROM_QUANTITY_STALE"
CENT = Decimal("0.01")

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class Variant:
    id: str
    sku: str
    item: str  # the inventory item's gid


@dataclass(frozen=True)
class Buying:
    """A Shopify company location and the ERP account it buys for."""

    id: str
    name: str
    account: Account
    catalogs: tuple[tuple[str, str, str | None], ...]  # (catalog id, title, price list id)
    terms: str | None  # the payment terms template's id


@dataclass
class Change:
    """One level to set: what we read and what the ERP says it should be."""

    variant: Variant
    location: str
    read: int
    target: int


def catalog_title(account_id: str) -> str:
    return f"ordersync {account_id}"


def _quantity(level: Mapping[str, Any] | None) -> int | None:
    """``available`` of an inventory level as read (None: the item is not stocked there)."""
    if not level:
        return None
    for q in level.get("quantities") or []:
        if q.get("name") == "available":
            return int(q.get("quantity") or 0)
    return None


def _errors(payload: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return list((payload or {}).get("userErrors") or [])


def _said(errors: Iterable[Mapping[str, Any]]) -> str:
    return "; ".join(f"{e.get('code') or ''} {'.'.join(e.get('field') or [])}: {e.get('message')}".strip()
                     for e in errors)


def _index(error: Mapping[str, Any]) -> int | None:
    """The quantity an inventorySetQuantities userError is about (``input.quantities.<n>``)."""
    field = list(error.get("field") or [])
    if len(field) >= 3 and field[:2] == ["input", "quantities"] and str(field[2]).isdigit():
        return int(field[2])
    return None


def days_of(terms: str) -> int | None:
    found = re.search(r"(\d+)", terms)
    return int(found.group(1)) if found else None


class ShopifySync:
    """The outbound sync of one shop (see the module docstring)."""

    def __init__(self, shop: Shop, erps: Erps, db: Database, clock: Clock, directory: AccountDirectory, *,
                 stale_rounds: int = STALE_ROUNDS, erp_batch: int = ERP_BATCH) -> None:
        self.shop = shop
        self.settings = shop.settings
        self.client = shop.client
        self.erps = erps
        self.db = db
        self.clock = clock
        self.directory = directory
        self.stale_rounds = stale_rounds
        self.erp_batch = erp_batch

    @property
    def name(self) -> str:
        return self.settings.name

    # -- who buys ---------------------------------------------------------------------------------------

    def mapping(self) -> dict[str, str]:
        """Company (location) id -> ERP account: the configuration's and those set with ``ordersync shopify
        map`` (kept in the store; they win), as the inbound side uses them."""
        with self.db.read() as conn:
            mapped = store.all_state(conn, self.name, "mapping")
        return {**self.settings.companies, **{k: str(v) for k, v in mapped.items()}}

    def buyers(self) -> tuple[list[Buying], list[str]]:
        """The shop's company locations matched to ERP accounts, and why the others are not."""
        accounts, mapping = self.directory.accounts(), self.mapping()
        matched: list[Buying] = []
        unmatched: list[str] = []
        for node in self.client.pages(ops.COMPANY_LOCATIONS, {}, ("companyLocations",), page_size=50):
            company = node.get("company") or {}
            buyer = Buyer(company_id=company.get("id", ""), company_name=company.get("name", ""),
                          company_external_id=company.get("externalId") or None, location_id=node["id"],
                          location_name=node.get("name", ""), location_external_id=node.get("externalId") or None,
                          tax_id=(node.get("taxSettings") or {}).get("taxRegistrationId") or None, contact_id=None)
            match = match_account(buyer, accounts, mapping)
            if match.account is None:
                unmatched.append(match.reason)
                continue
            catalogs = tuple((c["id"], c.get("title") or "", (c.get("priceList") or {}).get("id"))
                             for c in (node.get("catalogs") or {}).get("nodes") or [])
            template = ((node.get("buyerExperienceConfiguration") or {}).get("paymentTermsTemplate") or {}).get("id")
            matched.append(Buying(node["id"], buyer.location_name, match.account, catalogs, template))
        return matched, unmatched

    def variants(self, skus: Sequence[str] | None = None) -> dict[str, Variant]:
        """The shop's variants by SKU (all, or those of ``skus``); a variant without a SKU is left out."""
        found: dict[str, Variant] = {}
        if skus is None:  # everything: one bulk read, charged as one mutation instead of per variant
            for node in self.client.bulk(ops.BULK_VARIANTS):
                sku = (node.get("sku") or "").strip()
                if sku and "id" in node and "/ProductVariant/" in node["id"]:
                    found[sku] = Variant(node["id"], sku, (node.get("inventoryItem") or {}).get("id", ""))
            return found
        queries = [" OR ".join(f'sku:"{sku}"' for sku in part) for part in chunks(sorted(set(skus)), 50)]
        for query in queries:
            for node in self.client.pages(ops.VARIANTS, {"query": query}, ("productVariants",), page_size=250):
                sku = (node.get("sku") or "").strip()
                if sku and (skus is None or sku in skus):
                    found[sku] = Variant(node["id"], sku, (node.get("inventoryItem") or {}).get("id", ""))
        return found

    # -- prices -----------------------------------------------------------------------------------------

    def push_prices(self, accounts: Sequence[str] | None = None, *, force: bool = False) -> dict[str, Any]:
        """Contract prices into each matched account's catalog (``accounts``: only these); ``force`` pushes
        unchanged prices too. Returns the report (kept for /ops)."""
        started, meter = time.perf_counter(), self._meter()
        report: dict[str, Any] = {"at": self.clock.now().isoformat(), "shop": self.name, "accounts": {},
                                  "unmatched": [], "errors": []}
        buyers, report["unmatched"] = self.buyers()
        by_account: dict[str, list[Buying]] = defaultdict(list)
        for buying in buyers:
            if accounts is None or buying.account.id in accounts:
                by_account[buying.account.id].append(buying)
        variants = self.variants() if by_account else {}
        assortments: dict[str, set[str]] = {}
        for account_id, locations in sorted(by_account.items()):
            part: dict[str, Any] = {"locations": len(locations)}
            report["accounts"][account_id] = part
            try:
                self._price_account(locations[0].account, locations, variants, assortments, force, part)
            except (UnknownItem, ValueError) as exc:
                part.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        return self._finish("prices", report, started, meter)

    def _price_account(self, account: Account, locations: list[Buying], variants: Mapping[str, Variant],
                       assortments: dict[str, set[str]], force: bool, part: dict[str, Any]) -> None:
        errors: list[str] = part.setdefault("errors", [])
        link = self._catalog(account, locations, errors)
        if link is None:
            return
        price_list = link["price_list"]
        part.update(catalog=link["catalog"], price_list=price_list,
                    not_in_catalog=[b.name for b in locations if b.id not in link.get("locations", [])])
        erp_name = self.erps.erp_name_for(account.id)
        if erp_name not in assortments:
            assortments[erp_name] = {p.sku for p in self.erps.erp(erp_name).products()}
        assortment = assortments[erp_name]
        skus = sorted(assortment & set(variants))
        part.update(skus=len(skus), not_in_shop=len(assortment - set(variants)),
                    not_in_erp=len(set(variants) - assortment))
        wanted = self._contract_prices(account.id, skus)
        currency = self.settings.currency
        with self.db.read() as conn:
            pushed: dict[str, Any] = store.get_state(conn, self.name, "prices", price_list) or {}
        todo: list[tuple[Variant, Decimal, list[tuple[int, Decimal]], str]] = []
        for sku in skus:
            if sku not in wanted:
                continue
            price, breaks = wanted[sku]
            variant = variants[sku]
            digest = hashlib.sha256(json.dumps([currency, str(price), [[q, str(p)] for q, p in breaks]])
                                    .encode()).hexdigest()[:20]
            if force or (pushed.get(variant.id) or [None])[0] != digest:
                todo.append((variant, price, breaks, digest))
        part.update(changed=0, unchanged=len(wanted) - len(todo), breaks=0)
        saved = time.monotonic()
        for batch in chunks(todo, SHOPIFY_BATCH):
            data = self.client.execute(ops.PRICES_ADD, {"priceListId": price_list, "prices": [
                {"variantId": v.id, "price": {"amount": str(p), "currencyCode": currency}} for v, p, _, _ in batch]})
            problems = _errors(data.get("priceListFixedPricesAdd"))
            if problems:
                errors.append(f"fixed prices: {_said(problems)}")
                if any(e.get("code") == "PRICE_LIST_NOT_FOUND" for e in problems):
                    self._remember(account.id, {})  # deleted in Shopify: made again at the next push
                    return
                continue
            had = {v.id for v, _, _, _ in batch if (pushed.get(v.id) or [None, 0])[1]}
            ok = self._push_breaks(price_list, [(v, b) for v, _, b, _ in batch if b or v.id in had], errors)
            if not ok:
                continue
            done = {v.id: [digest, len(b)] for v, _, b, digest in batch}
            pushed.update(done)
            part["changed"] += len(batch)
            part["breaks"] += sum(len(b) for _, _, b, _ in batch)
            if time.monotonic() - saved > SAVE_SECONDS:  # now and then, not per batch: the map is the whole list
                self._save_pushed(price_list, pushed)
                saved = time.monotonic()
        self._save_pushed(price_list, pushed)

    def _save_pushed(self, price_list: str, pushed: dict[str, Any]) -> None:
        """What is on the price list (a crash before it is saved costs re-sending those prices: they replace
        what is there, so nothing doubles)."""
        with self.db.write() as conn:
            store.put_state(conn, self.name, "prices", price_list, pushed, self.clock.now())

    def _contract_prices(self, account_id: str, skus: Sequence[str]) -> dict[str, tuple[Decimal, list[tuple[int,
                                                                                                        Decimal]]]]:
        """sku -> (the ERP's unit price at 1, [(quantity, lower unit price there)]), asked in batches."""
        quantities = [1, *sorted({q for q in self.settings.quantity_breaks if q > 1})]
        items = [(sku, Decimal(q)) for sku in skus for q in quantities]
        unit: dict[tuple[str, int], Decimal] = {}
        erp = self.erps.for_account(account_id)
        for batch in chunks(items, self.erp_batch):
            for quote in erp.prices(account_id, list(batch)):
                if quote.currency != self.settings.currency:
                    raise ValueError(f"the ERP prices {account_id} in {quote.currency}, the shop's price lists are "
                                     f"in {self.settings.currency}")
                unit[(quote.sku, int(quote.quantity))] = quote.unit_price.quantize(CENT, ROUND_HALF_UP)
        out: dict[str, tuple[Decimal, list[tuple[int, Decimal]]]] = {}
        for sku in skus:
            base = unit.get((sku, 1))
            if base is None or base <= 0:
                continue  # no contract price: the shop's own price stands
            breaks: list[tuple[int, Decimal]] = []
            for q in quantities[1:]:
                price = unit.get((sku, q))
                if price is not None and 0 < price < (breaks[-1][1] if breaks else base):
                    breaks.append((q, price))
            out[sku] = (base, breaks)
        return out

    def _push_breaks(self, price_list: str, variants: Sequence[tuple[Variant, list[tuple[int, Decimal]]]],
                     errors: list[str]) -> bool:
        """Replace the quantity breaks of ``variants`` (their old ones go, the new ones come) in calls of at
        most 250 breaks; whether Shopify took them all."""
        ok = True
        currency = self.settings.currency
        batch: list[tuple[Variant, list[tuple[int, Decimal]]]] = []
        size = 0
        for entry in [*variants, None]:
            if entry is not None and size + len(entry[1]) <= SHOPIFY_BATCH and len(batch) < SHOPIFY_BATCH:
                batch.append(entry)
                size += len(entry[1])
                continue
            if batch:
                data = self.client.execute(ops.QUANTITY_PRICING, {"priceListId": price_list, "input": {
                    "pricesToAdd": [], "pricesToDeleteByVariantId": [], "quantityPriceBreaksToDelete": [],
                    "quantityPriceBreaksToDeleteByVariantId": [v.id for v, _ in batch],
                    "quantityPriceBreaksToAdd": [{"variantId": v.id, "minimumQuantity": q,
                                                  "price": {"amount": str(p), "currencyCode": currency}}
                                                 for v, breaks in batch for q, p in breaks],
                    "quantityRulesToAdd": [], "quantityRulesToDeleteByVariantId": []}})
                problems = _errors(data.get("quantityPricingByVariantUpdate"))
                if problems:
                    errors.append(f"quantity breaks: {_said(problems)}")
                    ok = False
            batch, size = ([entry], len(entry[1])) if entry is not None else ([], 0)
        return ok

    def _catalog(self, account: Account, locations: list[Buying], errors: list[str]) -> dict[str, Any] | None:
        """The account's catalog and price list: remembered, found again on its locations by title, or
        created (price list, then the catalog for all the account's locations)."""
        with self.db.read() as conn:
            link: dict[str, Any] | None = store.get_state(conn, self.name, "catalog", account.id)
        title = catalog_title(account.id)
        if link is None or not link.get("catalog"):
            found = next(((c, pl) for b in locations for c, t, pl in b.catalogs if t == title and pl), None)
            if found is not None:
                link = {"catalog": found[0], "price_list": found[1],
                        "locations": [b.id for b in locations if any(c == found[0] for c, _, _ in b.catalogs)]}
                self._remember(account.id, link)
        if link is not None and link.get("catalog"):
            # company locations matched since the catalog was made: known by what Shopify says now
            current = {b.id for b in locations if any(c == link["catalog"] for c, _, _ in b.catalogs)}
            if current and set(link.get("locations", [])) != current:
                link["locations"] = sorted(current)
                self._remember(account.id, link)
            return link
        if link is None or not link.get("price_list"):
            data = self.client.execute(ops.PRICE_LIST_CREATE, {"input": {
                # unique per creation: a price list a crash left unlinked never blocks the next attempt
                "name": f"{title} {uuid.uuid4().hex[:6]}", "currency": self.settings.currency,
                "parent": {"adjustment": {"type": "PERCENTAGE_DECREASE", "value": 0.0}}}})
            payload = data.get("priceListCreate") or {}
            if _errors(payload) or not payload.get("priceList"):
                errors.append(f"price list: {_said(_errors(payload))}")
                return None
            link = {"price_list": payload["priceList"]["id"], "catalog": None}
            self._remember(account.id, link)
        data = self.client.execute(ops.CATALOG_CREATE, {"input": {
            "title": title, "status": "ACTIVE", "priceListId": link["price_list"],
            "context": {"companyLocationIds": [b.id for b in locations]}}})
        payload = data.get("catalogCreate") or {}
        if _errors(payload) or not payload.get("catalog"):
            errors.append(f"catalog: {_said(_errors(payload))}")
            return None
        link = {**link, "catalog": payload["catalog"]["id"], "locations": sorted(b.id for b in locations)}
        self._remember(account.id, link)
        log.info("Shopify %s: catalog %s and price list %s made for %s (%d location(s))", self.name,
                 link["catalog"], link["price_list"], account.id, len(locations))
        return link

    def _remember(self, account_id: str, link: dict[str, Any]) -> None:
        with self.db.write() as conn:
            store.put_state(conn, self.name, "catalog", account_id, link, self.clock.now())

    # -- stock ------------------------------------------------------------------------------------------

    def push_stock(self, skus: Sequence[str] | None = None) -> dict[str, Any]:
        """Available-to-promise per plant as Shopify's available per location (``skus``: only these; all
        read with one bulk query otherwise). Returns the report (kept for /ops)."""
        started, meter = time.perf_counter(), self._meter()
        push_id = uuid.uuid4().hex[:16]
        report: dict[str, Any] = {"at": self.clock.now().isoformat(), "shop": self.name, "push": push_id,
                                  "full": skus is None, "items": 0, "changed": 0, "unchanged": 0,
                                  "stale_retries": 0, "not_in_erp": 0, "not_stocked": 0, "left_stale": 0,
                                  "errors": []}
        locations = set(self.settings.locations.values())
        if skus is None:
            variants, levels = self._read_everything(locations)
        else:
            variants = self.variants(skus)
            levels = self._read_levels([(v, loc) for v in variants.values() for loc in sorted(locations)])
        targets = self._targets(list(variants))
        report["not_in_erp"] = len(set(variants) - {sku for sku, _ in targets})
        pending: list[Change] = []
        for (sku, location), target in sorted(targets.items()):
            variant = variants[sku]
            read = levels.get((variant.item, location))
            report["items"] += 1
            if read is None:
                report["not_stocked"] += 1
            elif read == target:
                report["unchanged"] += 1
            else:
                pending.append(Change(variant, location, read, target))
        self._write(pending, push_id, report)
        return self._finish("stock", report, started, meter)

    def _write(self, pending: list[Change], push_id: str, report: dict[str, Any]) -> None:
        """Compare-and-set ``pending`` in calls of 250; a stale call is read again, priced against the ERP
        again and retried, ``stale_rounds`` times at most."""
        rounds = 0
        while pending:
            stale: list[Change] = []
            retry: list[Change] = []
            for batch in chunks(pending, SHOPIFY_BATCH):
                problems = self._set(batch, push_id)
                if not problems:
                    report["changed"] += len(batch)
                    continue
                bad = {i for e in problems if e.get("code") != STALE and (i := _index(e)) is not None}
                if any(e.get("code") != STALE and _index(e) is None for e in problems):
                    report["errors"].append(_said(problems))  # about the whole call: nothing to retry
                    continue
                for e in problems:
                    if e.get("code") != STALE:
                        report["errors"].append(_said([e]))
                rest = [c for i, c in enumerate(batch) if i not in bad]
                if any(e.get("code") == STALE for e in problems):
                    report["stale_retries"] += 1
                    stale += rest  # nothing of the call was applied: every item of it is read again
                else:
                    retry += rest
            rounds += 1
            if rounds > self.stale_rounds:
                report["left_stale"] += len(stale) + len(retry)
                if stale:
                    log.warning("Shopify %s: %d stock level(s) kept changing under us; left for the next push",
                                self.name, len(stale))
                return
            pending = retry + self._again(stale, report)

    def _set(self, batch: Sequence[Change], push_id: str) -> list[dict[str, Any]]:
        """One inventorySetQuantities call; its userErrors."""
        quantities = [{"inventoryItemId": c.variant.item, "locationId": c.location, "quantity": c.target,
                       "changeFromQuantity": c.read} for c in batch]
        payload = {"name": "available", "reason": "correction", "referenceDocumentUri": f"ordersync://stock/{push_id}",
                   "quantities": quantities}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        data = self.client.execute(ops.INVENTORY_SET, {"input": payload, "key": str(uuid.uuid5(KEY_NAMESPACE, digest))})
        return _errors(data.get("inventorySetQuantities"))

    def _again(self, stale: list[Change], report: dict[str, Any]) -> list[Change]:
        """The stale items as they are now, in Shopify and in the ERP: those still to change."""
        if not stale:
            return []
        levels = self._read_levels([(c.variant, c.location) for c in stale])
        targets = self._targets(sorted({c.variant.sku for c in stale}))
        out = []
        for c in stale:
            read, target = levels.get((c.variant.item, c.location)), targets.get((c.variant.sku, c.location))
            if read is None or target is None:
                continue
            if read == target:
                report["unchanged"] += 1  # someone else already made it what the ERP says
            else:
                out.append(Change(c.variant, c.location, read, target))
        return out

    def _read_everything(self, locations: set[str]) -> tuple[dict[str, Variant], dict[tuple[str, str], int]]:
        """Every variant and its available quantity per location, in one bulk operation."""
        variants: dict[str, Variant] = {}
        owner: dict[str, Variant] = {}  # a level line's parent (the variant; its inventory item, to be safe)
        orphans: list[dict[str, Any]] = []
        for line in self.client.bulk(ops.BULK_VARIANT_LEVELS):
            if "__parentId" not in line:
                sku = (line.get("sku") or "").strip()
                item = (line.get("inventoryItem") or {}).get("id", "")
                variant = Variant(line["id"], sku, item)
                owner[variant.id] = variant
                if item:
                    owner[item] = variant
                if sku:
                    variants[sku] = variant
            else:
                orphans.append(line)
        levels: dict[tuple[str, str], int] = {}
        for line in orphans:
            parent = owner.get(line["__parentId"])
            location = (line.get("location") or {}).get("id")
            quantity = _quantity(line)
            if parent is not None and location in locations and quantity is not None:
                levels[(parent.item, location)] = quantity
        return variants, levels

    def _read_levels(self, wanted: Sequence[tuple[Variant, str]]) -> dict[tuple[str, str], int]:
        """Available of (variant, location) pairs, read per location in calls of 250 items."""
        by_location: dict[str, list[str]] = defaultdict(list)
        for variant, location in wanted:
            if variant.item and variant.item not in by_location[location]:
                by_location[location].append(variant.item)
        levels: dict[tuple[str, str], int] = {}
        for location, items in sorted(by_location.items()):
            for batch in chunks(items, SHOPIFY_BATCH):
                data = self.client.execute(ops.ITEM_LEVELS, {"ids": list(batch), "locationId": location})
                for node in data.get("nodes") or []:
                    quantity = _quantity((node or {}).get("inventoryLevel"))
                    if node and quantity is not None:
                        levels[(node["id"], location)] = quantity
        return levels

    def _targets(self, skus: Sequence[str]) -> dict[tuple[str, str], int]:
        """(sku, Shopify location) -> what available should be: the ERP's available-to-promise of the
        plants behind the location, each floored at 0. SKUs no ERP sells are left out."""
        plants = self.settings.locations
        targets: dict[tuple[str, str], int] = {}
        for position in self._positions(skus):
            location = plants.get(position.plant)
            if location is None:
                continue
            key = (position.sku, location)
            targets[key] = targets.get(key, 0) + max(0, math.floor(position.available_to_promise))
        return targets

    def _positions(self, skus: Sequence[str]) -> list[StockPosition]:
        """Every ERP's positions of the ``skus`` it sells; a plant without a position has none (0)."""
        positions: list[StockPosition] = []
        wanted = set(skus)
        for name in self.erps.names():
            erp = self.erps.erp(name)
            known = sorted(wanted & {p.sku for p in erp.products()})
            for batch in chunks(known, self.erp_batch):
                got = erp.availability(list(batch))
                positions += got
                seen = {(p.sku, p.plant) for p in got}
                positions += [StockPosition(sku=sku, plant=plant, on_hand=Decimal(0), reserved=Decimal(0),
                                            available_to_promise=Decimal(0), as_of=self.clock.now())
                              for sku in batch for plant in self.settings.locations if (sku, plant) not in seen]
        return positions

    # -- payment terms ----------------------------------------------------------------------------------

    def push_payment_terms(self) -> dict[str, Any]:
        """Each matched company location buys on its account's ERP payment terms. Returns the report."""
        started, meter = time.perf_counter(), self._meter()
        report: dict[str, Any] = {"at": self.clock.now().isoformat(), "shop": self.name, "updated": [],
                                  "unchanged": 0, "unknown": [], "no_terms": [], "unmatched": [], "errors": []}
        buyers, report["unmatched"] = self.buyers()
        templates = self.client.execute(ops.PAYMENT_TERMS_TEMPLATES, {}).get("paymentTermsTemplates") or []
        for buying in buyers:
            terms = getattr(buying.account, "payment_terms", None)
            if not terms:
                report["no_terms"].append(f"{buying.name} ({buying.account.id})")
                continue
            template = template_for(str(terms), templates)
            if template is None:
                report["unknown"].append(f"{buying.name} ({buying.account.id}): {terms!r} is no Shopify payment "
                                         "terms template")
                continue
            if template["id"] == buying.terms:
                report["unchanged"] += 1
                continue
            data = self.client.execute(ops.COMPANY_LOCATION_TERMS, {"id": buying.id, "input": {
                "buyerExperienceConfiguration": {"paymentTermsTemplateId": template["id"]}}})
            problems = _errors(data.get("companyLocationUpdate"))
            if problems:
                report["errors"].append(f"{buying.name} ({buying.account.id}): {_said(problems)}")
            else:
                report["updated"].append(f"{buying.name} ({buying.account.id}): {template['name']}")
        return self._finish("terms", report, started, meter)

    # -- reports ----------------------------------------------------------------------------------------

    def _meter(self) -> tuple[int, float]:
        stats = getattr(self.client, "stats", None)
        return int(getattr(stats, "calls", 0) or 0), float(getattr(stats, "points", 0) or 0)

    def _finish(self, kind: str, report: dict[str, Any], started: float, meter: tuple[int, float]) -> dict[str, Any]:
        calls, points = self._meter()
        report.update(calls=calls - meter[0], points=round(points - meter[1], 1),
                      seconds=round(time.perf_counter() - started, 3), finished_at=self.clock.now().isoformat())
        with self.db.write() as conn:
            store.put_state(conn, self.name, "report", kind, report, self.clock.now())
        log.info("Shopify %s: %s pushed in %.2f s, %d call(s)", self.name, kind, report["seconds"], report["calls"])
        return report


def template_for(terms: str, templates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The payment terms template an ERP's terms name: by name (any case), else by the days in it."""
    wanted = " ".join(terms.split()).casefold()
    for template in templates:
        if " ".join(str(template.get("name") or "").split()).casefold() == wanted:
            return template
    days = days_of(terms)
    if days is None:
        return None
    return next((t for t in templates if t.get("dueInDays") == days and t.get("paymentTermsType") in ("NET", None)),
                None)
