"""A storefront simulator: the order mix the demo customers of Kestrel Components send, placed through
``POST /v1/orders`` the way a storefront's webhook handler does (its API key per channel, an idempotency
key and a delivery id per delivery).

Deterministic for a seed. Each planned delivery says what it is meant to show, so the summary can
count what happened against what was sent. The mix, in proportions of N orders:

- normal orders from the distributor, the field-service firm and the enterprise buyer (by SKU and by
  customer part number), within stock;
- an order from the customer close to its credit limit that goes over it (credit hold);
- orders larger than the home plant's stock (split across plants), for SKUs stocked only in the other
  region's plant, or not at all (backorder);
- an order with an unknown SKU (rejected with a reason per line);
- an order whose shown price differs from the contract price (price-mismatch case);
- the same order delivered twice (same delivery id and idempotency key: a webhook retry);
- the same order re-sent with a new delivery id (a different key: the business key catches it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ordersync.devkit import demo_data

CHANNELS = ("portal", "dealer-app", "storefront")
REGULAR = ("C-1001", "C-1002", "C-1003")
NEAR_LIMIT = "C-1004"


@dataclass
class Delivery:
    kind: str  # normal | credit | split | backorder | unknown_sku | price_mismatch | retry | resend
    body: dict[str, Any]
    idempotency_key: str
    delivery_id: str
    expect_new: bool = True  # False for repeats of an earlier order


@dataclass
class Scenario:
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def unique_orders(self) -> int:
        return sum(1 for d in self.deliveries if d.expect_new)

    @property
    def duplicates(self) -> int:
        return sum(1 for d in self.deliveries if not d.expect_new)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.deliveries:
            out[d.kind] = out.get(d.kind, 0) + 1
        return out


def build(orders: int, seed: int = 7, run: str = "demo") -> Scenario:
    """A scenario of ``orders`` deliveries (at least 10, so that every kind appears once)."""
    orders = max(orders, 10)
    rng = random.Random(seed)
    prof = demo_data.profile("main")
    builder = _Builder(prof, rng, run)
    special = ["credit", "split", "other_plant", "backorder", "unknown_sku", "price_mismatch", "retry", "resend"]
    extra = max(0, orders - 10) // 10  # more specials as the run grows, normal orders stay the majority
    plan = special + ["split", "other_plant", "backorder", "retry", "resend"] * extra
    plan += ["normal"] * (orders - len(plan))
    rng.shuffle(plan)
    # repeats need an earlier order to repeat: move them behind the first normal order
    plan.sort(key=lambda k: (k in ("retry", "resend") and 1) or 0)
    scenario = Scenario()
    for kind in plan:
        scenario.deliveries.append(builder.make(kind, scenario))
    return scenario


class _Builder:
    def __init__(self, prof: demo_data.Profile, rng: random.Random, run: str) -> None:
        self.prof = prof
        self.rng = rng
        self.run = run
        self.n = 0
        self.resends = 0
        self.sellable = [p for p in prof["products"] if min(p["stock"].values(), default=0) >= 40
                         and len(p["stock"]) == 2]
        self.one_plant = [p for p in prof["products"] if len(p["stock"]) == 1
                          and next(iter(p["stock"].values())) >= 20]
        self.none = [p for p in prof["products"] if not p["stock"]]

    def make(self, kind: str, scenario: Scenario) -> Delivery:
        if kind in ("retry", "resend"):
            originals = [d for d in scenario.deliveries if d.kind == "normal"]
            if originals:
                first = self.rng.choice(originals)
                if kind == "retry":  # a webhook retry: the very same request
                    return Delivery(kind, first.body, first.idempotency_key, first.delivery_id, expect_new=False)
                self.resends += 1
                return Delivery(kind, first.body, f"key-{self.run}-resend-{self.resends}",
                                f"dl-{self.run}-resend-{self.resends}", expect_new=False)
            kind = "normal"
        self.n += 1
        customer = NEAR_LIMIT if kind == "credit" else self.rng.choice(REGULAR)
        cust = demo_data.customer(self.prof, customer)
        lines = self._lines(kind, cust)
        ship_to = cust["addresses"][0]["key"] if kind != "other_plant" else self._ship_to_away(cust, lines)
        body = {
            "channel": self.rng.choice(CHANNELS),
            "external_order_number": f"{self.run.upper()}-{self.n:05d}",
            "account_id": customer,
            "buyer_po_number": f"PO-{customer}-{self.n:05d}",
            "ship_to_id": ship_to,
            "currency": self.prof["company"]["currency"],
            "lines": lines,
        }
        return Delivery(kind, body, f"key-{self.run}-{self.n}", f"dl-{self.run}-{self.n}")

    def _qty(self, product: demo_data.Product, upto: int) -> int:
        pack = int(demo_data.pack_multiple(self.prof, product["sku"]))
        minimum = int(demo_data.minimum_quantity(self.prof, product["sku"]))
        qty = max(minimum, self.rng.randint(1, max(1, upto)))
        return ((qty + pack - 1) // pack) * pack

    def _line(self, no: int, product: demo_data.Product, qty: int, cust: demo_data.Customer,
              *, by_part: bool = False, shown: Decimal | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {"line_no": no, "quantity": str(qty)}
        parts = {p["sku"]: p["code"] for p in cust["part_numbers"]}
        if by_part and product["sku"] in parts:
            line["customer_part_number"] = parts[product["sku"]]
        else:
            line["sku"] = product["sku"]
        if shown is not None:
            line["unit_price_shown"] = str(shown)
        return line

    def _lines(self, kind: str, cust: demo_data.Customer) -> list[dict[str, Any]]:
        code = cust["code"]
        if kind == "credit":
            motor = demo_data.product(self.prof, "MOT-IE3-4.0-4P")
            return [self._line(1, motor, 8, cust)]
        if kind == "unknown_sku":
            good = self.rng.choice(self.sellable)
            return [self._line(1, good, self._qty(good, 5), cust),
                    {"line_no": 2, "sku": "BRG-9999-XX", "quantity": "4"}]
        if kind == "split":  # more than the home plant has: the rest ships from the other plant
            home = self.prof["regions"][cust["addresses"][0]["region"]]
            product = self.rng.choice([p for p in self.sellable if 40 <= p["stock"][home] <= 400])
            qty = demo_data.forecast(self.prof, product["sku"], home) + self.rng.randint(5, 15)
            pack = int(demo_data.pack_multiple(self.prof, product["sku"]))
            return [self._line(1, product, ((qty + pack - 1) // pack) * pack, cust)]
        if kind == "other_plant":  # the SKU is stocked only in the plant of the other region
            product = self.rng.choice(self.one_plant)
            stock = next(iter(product["stock"].values()))
            return [self._line(1, product, self._qty(product, max(1, stock // 4)), cust)]
        if kind == "backorder":
            product = self.rng.choice(self.none)
            return [self._line(1, product, self._qty(product, 3), cust)]
        count = self.rng.randint(1, 3)
        picks = self.rng.sample(self.sellable, count)
        lines = []
        for i, product in enumerate(picks, start=1):
            qty = self._qty(product, 6)
            shown = None
            if kind == "price_mismatch" and i == 1:
                shown = (demo_data.contract_price(self.prof, code, product["sku"], qty) * Decimal("0.8")).quantize(
                    Decimal("0.01"))
            elif self.rng.random() < 0.5:  # storefronts often send the price they showed
                shown = demo_data.contract_price(self.prof, code, product["sku"], qty)
            lines.append(self._line(i, product, qty, cust, by_part=self.rng.random() < 0.3, shown=shown))
        return lines

    def _ship_to_away(self, cust: demo_data.Customer, lines: list[dict[str, Any]]) -> str:
        """A ship-to in the region whose plant lacks the SKU, so allocation must use the other plant."""
        sku = lines[0].get("sku") or ""
        product = demo_data.product(self.prof, sku) if sku else None
        stocked = set(product["stock"]) if product else set()
        for address in cust["addresses"]:
            plant = self.prof["regions"].get(address["region"])
            if plant and plant not in stocked:
                return address["key"]
        return cust["addresses"][0]["key"]


def place(base: str, scenario: Scenario, keys: dict[str, str], console: Console) -> dict[str, int]:
    """Send every delivery of ``scenario`` to the hub at ``base`` with the channel's key (``keys``), with a
    progress bar; returns how the hub answered: accepted, duplicate (the business key was known), replayed
    (the idempotency key was) or refused."""
    outcomes = {"accepted": 0, "duplicate": 0, "replayed": 0, "refused": 0}
    columns = (TextColumn("placing orders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with httpx.Client(base_url=base, timeout=30) as client, Progress(*columns, console=console) as bar:
        task = bar.add_task("orders", total=len(scenario.deliveries))
        for delivery in scenario.deliveries:
            body = {k: v for k, v in delivery.body.items() if k != "channel"}
            response = client.post("/v1/orders", json=body, headers={
                "Authorization": f"Bearer {keys[delivery.body['channel']]}",
                "Idempotency-Key": delivery.idempotency_key, "X-Delivery-Id": delivery.delivery_id})
            if response.status_code != 202:
                outcomes["refused"] += 1
                console.print(f"[red]refused[/red] {delivery.kind}: {response.status_code} {response.text[:200]}")
            elif response.headers.get("Idempotent-Replayed"):
                outcomes["replayed"] += 1
            elif response.json()["duplicate"]:
                outcomes["duplicate"] += 1
            else:
                outcomes["accepted"] += 1
            bar.advance(task)
    return outcomes
