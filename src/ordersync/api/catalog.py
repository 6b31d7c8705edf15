"""``/v1/catalog``, ``/v1/prices``, ``/v1/availability``: served from the read model, never straight
from the ERP (a miss asks the ERP once, see :mod:`ordersync.runtime.readmodel`).

Every answer carries ``as_of`` (when the ERP's figures were true) and ``stale``. Catalog and prices
answer conditional GETs: ``If-None-Match`` with the ``ETag`` of an earlier answer gives 304.

The handlers are ``async`` and answer from memory when they can; anything that needs the store or the
ERP runs in the thread pool, so the event loop never waits on I/O. Each answer is built by a plain
function (:func:`catalog_answer`, :func:`prices_answer`, :func:`availability_answer`) that the buyer portal
calls too, so both give the same answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ordersync.api.auth import CatalogReader, account_for
from ordersync.api.deps import HubDep
from ordersync.api.keys import Principal
from ordersync.api.problems import Problem
from ordersync.domain.allocation import LineDemand, PlantInfo, allocate
from ordersync.domain.errors import Unavailable
from ordersync.domain.pricing import apply_rules
from ordersync.ports.erp import UnknownItem
from ordersync.runtime.hub import Hub
from ordersync.runtime.readmodel import CatalogView, PriceView, ReadModel, StockView

router = APIRouter(prefix="/v1", tags=["catalog"])
T = TypeVar("T")

Skus = Annotated[list[str], Query(min_length=1, max_length=50, description="SKU or customer part number; repeat "
                                  "for a basket (up to 50)")]
AccountParam = Annotated[str | None, Query(min_length=1, max_length=120,
                                           description="required unless the API key is bound to an account")]


class FreshnessOut(BaseModel):
    as_of: dt.datetime = Field(description="when the ERP's figures were true")
    stale: bool = Field(description="older than the configured age, or the ERP cannot be reached now")


class CatalogItem(BaseModel):
    sku: str
    name: str
    unit: str
    category: str
    minimum_quantity: str
    pack_multiple: str
    list_price: str | None
    currency: str
    customer_part_numbers: list[str]


class CatalogOut(FreshnessOut):
    account_id: str
    items: list[CatalogItem]


class AdjustmentOut(BaseModel):
    rule: str
    description: str = ""
    unit_amount: str = Field(description="taken off the unit price by this rule")


class PriceOut(FreshnessOut):
    sku: str
    quantity: str
    currency: str
    contract_unit_price: str = Field(description="the ERP contract price (the authority)")
    unit_price: str = Field(description="after the channel and campaign rules that apply to this key")
    adjustments: list[AdjustmentOut]
    source: str = Field(description="erp_contract, or erp_contract+rules when channel rules applied")


class PricesOut(FreshnessOut):
    account_id: str
    channel: str
    campaign: str | None
    prices: list[PriceOut]


class PlantStockOut(BaseModel):
    plant: str
    on_hand: str
    available_to_promise: str
    replenishment_date: dt.date | None
    as_of: dt.datetime


class PromiseOut(BaseModel):
    plant: str
    quantity: str
    promised_date: dt.date | None
    backorder: bool


class AvailabilityItem(FreshnessOut):
    sku: str
    available_to_promise: str = Field(description="over all plants")
    plants: list[PlantStockOut]
    requested_quantity: str | None = None
    promise: list[PromiseOut] = Field(default_factory=list,
                                      description="how the requested quantity would ship: plant, quantity, "
                                                  "date; what no plant has now is backordered with a date")


class AvailabilityOut(FreshnessOut):
    items: list[AvailabilityItem]


ERRORS: dict[int | str, dict[str, Any]] = {
    304: {"description": "not modified (If-None-Match matched the ETag)"},
    404: {"description": "unknown SKU or account", "content": {"application/problem+json": {}}},
    503: {"description": "the ERP is down and nothing is known yet", "content": {"application/problem+json": {}}},
}


async def _io(model: ReadModel, fast: Callable[[], T | None], slow: Callable[[], T]) -> T:
    """Answer from memory, else from the store or the ERP in the thread pool, mapping their errors."""
    try:
        hit = fast()
        if hit is not None:
            return hit
        return await run_in_threadpool(slow)
    except UnknownItem as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except Unavailable as exc:
        raise Problem(503, "ERP not available", f"{exc}; nothing is known about this yet, try again",
                      headers={"Retry-After": "5"}) from None


def _model(hub: Hub) -> ReadModel:
    model: ReadModel | None = hub.readmodel
    if model is None:
        raise Problem(503, "No ERP configured", "this hub has no ERP, so it has no prices or stock",
                      headers={"Retry-After": "60"})
    return model


def _conditional(request: Request, body: dict[str, Any]) -> Response:
    raw = json.dumps(body, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    wanted = request.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in wanted.split(",")]):
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _freshness(views: list[Any]) -> dict[str, Any]:
    if not views:
        return {"as_of": None, "stale": False}
    return {"as_of": min(v.freshness.as_of for v in views).isoformat(), "stale": any(v.freshness.stale for v in views)}


async def _resolve(model: ReadModel, account_id: str, skus: list[str]) -> tuple[list[str], CatalogView]:
    """Customer part numbers of the account become SKUs (the catalog knows them); the catalog too."""
    catalog: CatalogView = await _io(model, lambda: model.catalog_cached(account_id),
                                     lambda: model.catalog(account_id))
    by_part = {part: item["sku"] for item in catalog.products for part in item["customer_part_numbers"]
               if item.get("active", True)}
    return [by_part.get(s, s) for s in skus], catalog


@router.get("/catalog", response_model=CatalogOut, responses=ERRORS)
async def get_catalog(request: Request, hub: HubDep, principal: CatalogReader, account_id: AccountParam = None
                      ) -> Response:
    """The account's assortment: SKUs, units, minimum quantities, pack multiples and the account's own
    customer part numbers."""
    return _conditional(request, await catalog_answer(hub, principal, account_id))


async def catalog_answer(hub: Hub, principal: Principal, account_id: str | None = None) -> dict[str, Any]:
    """The body of ``GET /v1/catalog`` (see :func:`get_catalog`)."""
    account = account_for(principal, account_id)
    model = _model(hub)
    view: CatalogView = await _io(model, lambda: model.catalog_cached(account), lambda: model.catalog(account))
    return {"account_id": account, "as_of": view.freshness.as_of.isoformat(), "stale": view.freshness.stale,
            "items": [{k: v for k, v in item.items() if k != "active"} for item in view.products
                      if item.get("active", True)]}


@router.get("/prices", response_model=PricesOut, responses=ERRORS)
async def get_prices(
    request: Request,
    hub: HubDep,
    principal: CatalogReader,
    sku: Skus,
    qty: Annotated[list[Decimal] | None, Query(max_length=50, description="one quantity for every SKU, or one per "
                                               "SKU in the same order; default 1")] = None,
    account_id: AccountParam = None,
    campaign: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Contract prices from the ERP for this account, with the channel and campaign rules that apply to
    this API key's channel. ``source`` says where the price comes from; ``as_of`` when it was true."""
    return _conditional(request, await prices_answer(hub, principal, sku, qty, account_id, campaign))


async def prices_answer(hub: Hub, principal: Principal, sku: list[str], qty: list[Decimal] | None = None,
                        account_id: str | None = None, campaign: str | None = None) -> dict[str, Any]:
    """The body of ``GET /v1/prices`` (see :func:`get_prices`)."""
    account = account_for(principal, account_id)
    quantities = _quantities(sku, qty)
    model = _model(hub)
    skus, catalog = await _resolve(model, account, sku)
    items = list(zip(skus, quantities, strict=True))
    views: list[PriceView] = await _io(model, lambda: model.prices_cached(account, items),
                                       lambda: model.prices(account, items))
    categories = {i["sku"]: i["category"] for i in catalog.products}
    rules = list(hub.deps.policy.rules) if hub.deps is not None else []
    today = hub.clock.now().date()
    prices = [_price_out(v, rules, principal, campaign, categories, account, today) for v in views]
    return {"account_id": account, "channel": principal.channel, "campaign": campaign, **_freshness(views),
            "prices": prices}


def _quantities(skus: list[str], qty: list[Decimal] | None) -> list[Decimal]:
    if not qty:
        quantities = [Decimal(1)] * len(skus)
    elif len(qty) == 1:
        quantities = qty * len(skus)
    elif len(qty) == len(skus):
        quantities = list(qty)
    else:
        raise Problem(422, "Request is not valid", f"{len(qty)} quantities for {len(skus)} SKUs: give one "
                      "quantity, or one per SKU")
    for q in quantities:
        if not q.is_finite() or q <= 0 or q > Decimal("1e9") or q.as_tuple().exponent < -6:  # type: ignore[operator]
            raise Problem(422, "Request is not valid", f"quantity {q} must be positive, at most 1e9, "
                          "with at most 6 decimals")
    return quantities


def _price_out(view: PriceView, rules: list[Any], principal: Principal, campaign: str | None,
               categories: dict[str, str], account_id: str, today: dt.date) -> dict[str, Any]:
    q = view.quote
    unit_price, adjustments = apply_rules(q.contract_unit_price, rules, channel=principal.channel, campaign=campaign,
                                          sku=q.sku, category=categories.get(q.sku, ""), account_id=account_id,
                                          on=today)
    return {
        "sku": q.sku,
        "quantity": str(q.quantity),
        "currency": q.currency,
        "contract_unit_price": str(q.contract_unit_price),
        "unit_price": str(unit_price),
        "adjustments": [{"rule": a.rule, "description": a.description, "unit_amount": str(a.unit_amount)}
                        for a in adjustments],
        "source": "erp_contract+rules" if adjustments else "erp_contract",
        "as_of": view.freshness.as_of.isoformat(),
        "stale": view.freshness.stale,
    }


@router.get("/availability", response_model=AvailabilityOut, responses=ERRORS)
async def get_availability(
    hub: HubDep,
    principal: CatalogReader,
    sku: Skus,
    qty: Annotated[list[Decimal] | None, Query(max_length=50, description="quantities to promise (one for "
                                               "every SKU, or one per SKU)")] = None,
    account_id: AccountParam = None,
) -> Response:
    """Available-to-promise per plant with ``as_of``; with ``qty``, how that quantity would ship
    (plant, quantity, promised date) and what would be backordered, with its promised date."""
    return JSONResponse(await availability_answer(hub, principal, sku, qty, account_id))


async def availability_answer(hub: Hub, principal: Principal, sku: list[str], qty: list[Decimal] | None = None,
                              account_id: str | None = None) -> dict[str, Any]:
    """The body of ``GET /v1/availability`` (see :func:`get_availability`)."""
    account = principal.account_id if principal.account_id is not None else account_id
    if principal.account_id is not None and account_id not in (None, principal.account_id):
        raise Problem(404, "Not found", f"account {account_id} not found")
    model = _model(hub)
    skus = (await _resolve(model, account, sku))[0] if account else sku
    views: list[StockView] = await _io(model, lambda: model.stock_cached(skus), lambda: model.stock(skus, account))
    quantities = _quantities(sku, qty) if qty else None
    plants: list[PlantInfo] = []
    if quantities is not None:
        erp = model.erps.erp_name_for(account) if account else model.erps.default_name()
        plants = [PlantInfo(p.code, p.region) for p in await _io(model, lambda: None, lambda: model.plants(erp))]
    today = hub.clock.now().date()
    policy = hub.deps.policy.allocation if hub.deps is not None else None
    items = []
    for i, view in enumerate(views):
        item: dict[str, Any] = {
            "sku": view.sku,
            "available_to_promise": str(sum((p.available_to_promise for p in view.positions), Decimal(0))),
            "plants": [{"plant": p.plant, "on_hand": str(p.on_hand),
                        "available_to_promise": str(p.available_to_promise),
                        "replenishment_date": p.replenishment_date.isoformat() if p.replenishment_date else None,
                        "as_of": p.as_of.isoformat()} for p in view.positions],
            "as_of": view.freshness.as_of.isoformat(),
            "stale": view.freshness.stale,
            "requested_quantity": None,
            "promise": [],
        }
        if quantities is not None and plants:
            atp = {(view.sku, p.plant): p.available_to_promise for p in view.positions}
            demand = LineDemand(1, view.sku, quantities[i])
            kwargs = {"policy": policy} if policy is not None else {}
            allocations = allocate("preview", [demand], atp, plants, None, today, **kwargs)
            item["requested_quantity"] = str(quantities[i])
            item["promise"] = [{"plant": a.plant, "quantity": str(a.quantity),
                                "promised_date": a.promised_date.isoformat() if a.promised_date else None,
                                "backorder": a.backorder} for a in allocations]
        items.append(item)
    return {**_freshness(views), "items": items}
