# mypy: disable-error-code="import-not-found"
"""Create and seed a demo Tryton database. Runs INSIDE the Tryton virtual environment, never the hub's.

    python provision.py activate --db-dir DIR --name NAME
        writes DIR/trytond.conf, creates DIR/NAME.sqlite and activates the modules (trytond-admin)
    python provision.py seed --db-dir DIR --name NAME --data demo_data.py --profile main
        seeds an activated database with one profile of the demo data (proteus, in process)

With ``--db-uri postgresql://user@host:port/`` both work on the PostgreSQL database NAME instead (which
the caller has created, empty); DIR then holds only the configuration.

Standard library, trytond and proteus only: ``ordersync`` is not importable here, so the data file is
loaded by path. Bulk records go through raw ``create`` calls with value dicts (the RPC semantics the hub
will use), the accounting set-up through Tryton's own test tools.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
#: ordersync's own modules, installed into the environment by home.py (ordersync_changes: push)
OWN_MODULES = ("ordersync_changes",)


def modules() -> list[str]:
    """Every Tryton module pinned in requirements.txt (``trytond-sale-price-list`` -> ``sale_price_list``)."""
    names = [line.split("==")[0].strip().lower() for line in REQUIREMENTS.read_text().splitlines()]
    pinned = [n.removeprefix("trytond-").replace("-", "_") for n in names if n.startswith("trytond-")]
    return [*pinned, *OWN_MODULES]


def log(message: str) -> None:
    print(f"provision: {message}", file=sys.stderr, flush=True)


#: the database backend: SQLite files in --db-dir, or a PostgreSQL server (--db-uri postgresql://...)
DB_URI = "sqlite://"


def write_config(db_dir: Path) -> Path:
    conf = db_dir / "trytond.conf"
    if DB_URI.startswith("sqlite"):
        conf.write_text(f"[database]\nuri = {DB_URI}\npath = {db_dir}\nlist = False\n")
    else:
        conf.write_text(f"[database]\nuri = {DB_URI}\nlist = False\n")
    return conf


def activate(db_dir: Path, name: str) -> None:
    conf = write_config(db_dir)
    if DB_URI.startswith("sqlite"):
        (db_dir / f"{name}.sqlite").touch()  # the SQLite backend only opens existing files (PostgreSQL: the
        # caller has created the empty database)
    passfile = db_dir / "admin-password"
    passfile.write_text(secrets.token_urlsafe(18))  # replaced when a profile is seeded
    admin = Path(sys.executable).with_name("trytond-admin")
    activation = ["--activate-dependencies", "-u", *modules()]
    cmd = [str(admin), "-c", str(conf), "-d", name, "--email", "admin@example.com", *activation]
    env = {**os.environ, "TRYTONPASSFILE": str(passfile)}
    subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL)
    passfile.unlink()


def load_data(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ordersync_demo_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def o2m(*values: dict[str, Any]) -> list[Any]:
    """One2many/Many2many value creating ``values`` (raw create runs no on_change: pass everything)."""
    return [["create", list(values)]]


class Seeder:
    """Seeds one profile into an activated database through proteus' in-process RPC proxies."""

    def __init__(self, db_dir: Path, name: str, data: ModuleType, profile: dict[str, Any]) -> None:
        from proteus import config

        self.data = data
        self.p = profile
        self.cfg = config.set_trytond(name, config_file=str(write_config(db_dir)))
        self.today = dt.date.today()
        self.ids: dict[str, dict[str, int]] = {}

    # -- raw RPC helpers ---------------------------------------------------------------------------
    def rpc(self, model: str, method: str, *args: Any) -> Any:
        from proteus import Model

        return getattr(Model.get(model, config=self.cfg)._proxy, method)(*args, self.cfg.context)

    def create(self, model: str, values: list[dict[str, Any]]) -> list[int]:
        return list(self.rpc(model, "create", values)) if values else []

    def create_one(self, model: str, **values: Any) -> int:
        (created,) = self.create(model, [values])
        return created

    def one(self, model: str, domain: list[Any]) -> int:
        (found,) = self.rpc(model, "search", domain, 0, None, None)
        return int(found)

    def xml_id(self, ref: str) -> int:
        return int(self.rpc("ir.model.data", "get_id", *ref.split(".")))

    # -- steps -------------------------------------------------------------------------------------
    def run(self) -> None:
        steps = [self.company, self.accounting, self.countries, self.warehouses, self.catalog, self.carriers]
        for step in [*steps, self.stock, self.customers, self.users, self.open_sales]:
            started = time.monotonic()
            step()
            log(f"{step.__name__}: {time.monotonic() - started:.1f} s")

    def company(self) -> None:
        from proteus import Model
        from trytond.modules.company.tests.tools import create_company

        c = self.p["company"]
        cur = self.create_one(
            "currency.currency", name=c["currency_name"], code=c["currency"], symbol=c["currency_symbol"]
        )
        self.create_one("currency.currency.rate", currency=cur, rate=Decimal(1), date=dt.date.min)
        party = Model.get("party.party", config=self.cfg)(name=c["name"])
        party.save()
        currency = Model.get("currency.currency", config=self.cfg)(cur)
        create_company(party=party, currency=currency, config=self.cfg)
        self.company_id = self.one("company.company", [])
        self.company_party = party.id

    def accounting(self) -> None:
        from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
        from trytond.modules.account_invoice.tests.tools import set_fiscalyear_invoice_sequences

        create_chart(config=self.cfg)
        self.accounts = {k: a.id for k, a in get_accounts(config=self.cfg).items()}
        # calendar years around today, so a template built today still invoices in a year or two
        for year in range(self.today.year - 1, self.today.year + 3):
            fy = create_fiscalyear(today=(dt.date(year, 1, 1), dt.date(year, 12, 31)), config=self.cfg)
            fy = set_fiscalyear_invoice_sequences(fy, config=self.cfg)
            fy.save()
            fy.click("create_period")
        self.ids["payment_term"] = {
            term["name"]: self.create_one(
                "account.invoice.payment_term",
                name=term["name"],
                lines=o2m({"type": "remainder", "relativedeltas": o2m({"days": term["days"]})}),
            )
            for term in self.p["payment_terms"]
        }

    def countries(self) -> None:
        self.ids["country"], self.ids["subdivision"] = {}, {}
        for country in self.p["countries"]:
            cid = self.create_one("country.country", name=country["name"], code=country["code"])
            self.ids["country"][country["code"]] = cid
            subs = [{"country": cid, "code": c, "name": n, "type": t} for c, n, t in country["subdivisions"]]
            created = self.create("country.subdivision", subs)
            self.ids["subdivision"].update({v["code"]: i for v, i in zip(subs, created, strict=True)})
        self.create("party.address", [self.address(self.company_party, self.p["company"]["address"])])

    def address(self, party: int, a: dict[str, Any]) -> dict[str, Any]:
        # the seed key goes to building_name: the hub finds ship-to addresses by it
        return {
            "party": party,
            "building_name": a["key"],
            "street_unstructured": a["street"],
            "postal_code": a["postal_code"],
            "city": a["city"],
            "country": self.ids["country"][a["country"]],
            "subdivision": self.ids["subdivision"][a["subdivision"]],
            "invoice": a["invoice"],
            "delivery": a["delivery"],
        }

    def warehouses(self) -> None:
        zones = {
            "input_location": ("IN", "Input", "storage"),
            "output_location": ("OUT", "Output", "storage"),
            "storage_location": ("STO", "Storage", "storage"),
            "production_location": ("PROD", "Production", "production"),  # required by production
            "lost_found_location": ("LF", "Lost and Found", "lost_found"),  # or inventories fail
        }
        self.ids["warehouse"], self.ids["storage"] = {}, {}
        default = self.one("stock.location", [("type", "=", "warehouse")])
        (wh0,) = self.rpc("stock.location", "read", [default], list(zones))
        for index, wh in enumerate(self.p["warehouses"]):
            code = wh["code"]
            addr = self.create_one("party.address", **self.address(self.company_party, wh["address"]))
            names = {f: {"code": f"{code}-{sfx}", "name": f"{label} {code}"} for f, (sfx, label, _) in zones.items()}
            if index == 0:  # reuse Tryton's default warehouse and its zones, renamed
                wid, zone_ids = default, {field: wh0[field] for field in zones}
                for field, renamed in names.items():
                    self.rpc("stock.location", "write", [zone_ids[field]], renamed)
                self.rpc("stock.location", "write", [wid], {"code": code, "name": wh["name"], "address": addr})
            else:
                values = [{**names[f], "type": kind} for f, (_, _, kind) in zones.items()]
                zone_ids = dict(zip(zones, self.create("stock.location", values), strict=True))
                wid = self.create_one(
                    "stock.location", code=code, name=wh["name"], type="warehouse", address=addr, **zone_ids
                )
                inner = [zone_ids[f] for f in ("input_location", "output_location", "storage_location")]
                self.rpc("stock.location", "write", inner, {"parent": wid})
            self.ids["warehouse"][code] = wid
            self.ids["storage"][code] = zone_ids["storage_location"]

    def catalog(self) -> None:
        # A zero default lead time: without any, Tryton ignores the sale's shipping date when it plans
        # the moves (compute_shipping_date returns date.max), so a promised date would never reach stock.
        self.rpc("product.configuration", "write", [1], {"default_lead_time": dt.timedelta(0)})
        acc_cat = self.create_one(
            "product.category",
            name="Industrial goods (accounting)",
            accounting=True,
            account_revenue=self.accounts["revenue"],
            account_expense=self.accounts["expense"],
        )
        names = self.p["categories"]
        created = self.create("product.category", [{"name": n} for n in names])
        self.ids["category"] = dict(zip(names, created, strict=True))
        units = {p["unit"] for p in self.p["products"]}
        uoms = {unit: self.one("product.uom", [("symbol", "=", unit)]) for unit in units}
        values = [
            {
                "name": p["name"],
                "code": p["sku"],  # template code = product code while the product has no suffix
                "type": "goods",
                "salable": True,
                "default_uom": uoms[p["unit"]],
                "sale_uom": uoms[p["unit"]],
                "list_price": Decimal(p["list_price"]),
                "account_category": acc_cat,
                "categories": [["add", [self.ids["category"][p["category"]]]]],
                "products": o2m({"cost_price": Decimal(p["cost_price"])}),
                # trytond-sale-product-quantity: floats in the sale unit, None = no constraint
                "sale_quantity_minimal": float(p["minimum_quantity"]) if "minimum_quantity" in p else None,
                "sale_quantity_rounding": float(p["pack_multiple"]) if "pack_multiple" in p else None,
            }
            for p in self.p["products"]
        ]
        templates = self.create("product.template", values)
        self.ids["template"] = {p["sku"]: t for p, t in zip(self.p["products"], templates, strict=True)}
        self.ids["unit"] = {p["sku"]: uoms[p["unit"]] for p in self.p["products"]}
        domain = [("template", "in", templates)]
        rows = self.rpc("product.product", "search_read", domain, 0, None, None, ["code"])
        self.ids["product"] = {r["code"]: r["id"] for r in rows}
        assert set(self.ids["product"]) == set(self.ids["template"]), "product codes differ from SKUs"

    def carriers(self) -> None:
        """The demo carriers (trytond-carrier), the same in every profile: each a party and the service
        product its deliveries are charged with (not salable, so never in the hub's catalog)."""
        unit = self.one("product.uom", [("symbol", "=", "u")])
        carriers = self.data.CARRIERS
        templates = self.create("product.template", [
            {
                "name": c["service"],
                "code": c["service_code"],
                "type": "service",
                "salable": False,
                "default_uom": unit,
                "list_price": Decimal(0),
                "products": o2m({"cost_price": Decimal(c["cost_price"])}),
            }
            for c in carriers
        ])
        rows = self.rpc("product.product", "search_read", [("template", "in", templates)], 0, None, None, ["template"])
        product_of = {r["template"]: r["id"] for r in rows}
        parties = self.create("party.party", [{"name": c["name"], "code": c["code"]} for c in carriers])
        created = self.create("carrier", [
            {"party": party, "carrier_product": product_of[template]}
            for party, template in zip(parties, templates, strict=True)
        ])
        self.ids["carrier"] = {c["name"]: i for c, i in zip(carriers, created, strict=True)}

    def stock(self) -> None:
        for wh in self.p["warehouses"]:
            code = wh["code"]
            lines = [
                {"product": self.ids["product"][p["sku"]], "quantity": float(p["stock"][code])}
                for p in self.p["products"]
                if p["stock"].get(code)
            ]
            inventory = self.create_one(
                "stock.inventory",
                location=self.ids["storage"][code],
                date=self.today,
                company=self.company_id,
                lines=o2m(*lines),
            )
            self.rpc("stock.inventory", "confirm", [inventory])

    def price_list(self, cust: dict[str, Any]) -> int:
        rules = cust["price_list"]
        if not rules or set(rules[-1]) - {"discount"}:
            raise ValueError(f"the price list of {cust['code']} must end with a catch-all line")
        lines = []
        for seq, rule in enumerate(rules, 1):
            if "price" in rule:
                formula = f"Decimal('{rule['price']}')"
            elif "discount" in rule:
                formula = f"unit_price * Decimal('{1 - Decimal(rule['discount'])}')"
            else:
                formula = "unit_price"
            product = self.ids["product"][rule["sku"]] if "sku" in rule else None
            category = self.ids["category"][rule["category"]] if "category" in rule else None
            quantity = float(rule.get("min_quantity", 0))
            lines.append(
                {
                    "sequence": seq * 10,
                    "formula": formula,
                    "quantity": quantity,
                    "product": product,
                    "category": category,
                }
            )
        name = f"Contract {cust['code']} {cust['name']}"
        return self.create_one(
            "product.price_list", name=name, company=self.company_id, price="list_price", lines=o2m(*lines)
        )

    def customers(self) -> None:
        self.ids["party"], self.ids["address"] = {}, {}
        for cust in self.p["customers"]:
            party = self.create_one(
                "party.party",
                name=cust["name"],
                code=cust["code"],
                customer_payment_term=self.ids["payment_term"][cust["payment_term"]],
                sale_price_list=self.price_list(cust),
                credit_limit_amount=Decimal(cust["credit_limit"]),
                contact_mechanisms=o2m({"type": "email", "value": cust["email"]}),
                # its tax identifier (party.tax_identifier): Tryton checks the number with python-stdnum
                identifiers=o2m({"type": cust["tax_id_type"], "code": cust["tax_id"]}),
            )
            addresses = self.create("party.address", [self.address(party, a) for a in cust["addresses"]])
            self.ids["address"].update({a["key"]: i for a, i in zip(cust["addresses"], addresses, strict=True)})
            part_numbers = [
                {"template": self.ids["template"][pn["sku"]], "product": self.ids["product"][pn["sku"]]}
                | {"party": party, "code": pn["code"], "name": pn["name"]}
                for pn in cust["part_numbers"]
            ]
            self.create("sale.product_customer", part_numbers)
            self.ids["party"][cust["code"]] = party
        # deactivated last, once its addresses, price list and part numbers exist
        inactive = [self.ids["party"][c["code"]] for c in self.p["customers"] if not c["active"]]
        if inactive:
            self.rpc("party.party", "write", inactive, {"active": False})

    def users(self) -> None:
        admin, bot = self.data.ADMIN, self.data.INTEGRATION_USER
        admin_id = self.one("res.user", [("login", "=", admin["login"])])
        self.rpc("res.user", "write", [admin_id], {"password": admin["password"], "email": admin["email"]})
        user = self.create_one(
            "res.user",
            login=bot["login"],
            name=bot["name"],
            email=bot["email"],
            password=bot["password"],
            companies=[["add", [self.company_id]]],
            company=self.company_id,
            groups=[["add", [self.xml_id(g) for g in bot["groups"]]]],
        )
        if self.p.get("rest_key"):  # an administrator creates keys already validated
            self.create_one("res.user.application", user=user, application="rest", key=self.p["rest_key"])

    def open_sales(self) -> None:
        self.cfg.skip_warning = True  # seeding may exceed stock or credit on purpose
        try:
            for sale in self.p["open_sales"]:
                cust = self.data.customer(self.p, sale["customer"])
                ship_to = self.ids["address"][sale["ship_to"]]
                lines = [
                    {
                        "type": "line",
                        "product": self.ids["product"][line["sku"]],
                        "quantity": line["quantity"],
                        "unit": self.ids["unit"][line["sku"]],
                        "unit_price": self.data.contract_price(self.p, cust["code"], line["sku"], line["quantity"]),
                    }
                    for line in sale["lines"]
                ]
                sale_id = self.create_one(
                    "sale.sale",
                    party=self.ids["party"][cust["code"]],
                    reference=sale["reference"],
                    company=self.company_id,
                    warehouse=self.ids["warehouse"][sale["warehouse"]],
                    shipment_address=ship_to,
                    invoice_address=ship_to,
                    sale_date=self.today,
                    # to ship in a year: Tryton's forecast counts moves not done only while they are planned
                    # for today or later, so sales planned for the day the template was built fell out of
                    # every forecast the next day (the seeded forecast then differed from demo_data's)
                    shipping_date=self.today + dt.timedelta(days=365),
                    payment_term=self.ids["payment_term"][cust["payment_term"]],
                    lines=o2m(*lines),
                )
                self.rpc("sale.sale", "quote", [sale_id])
                self.rpc("sale.sale", "confirm", [sale_id])
        finally:
            self.cfg.skip_warning = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["activate", "seed"])
    parser.add_argument("--db-dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--profile")
    parser.add_argument("--db-uri", default="sqlite://", help="trytond's [database] uri (default SQLite files in "
                        "--db-dir; postgresql://user@host:port/ for a PostgreSQL server)")
    args = parser.parse_args(argv)
    global DB_URI
    DB_URI = args.db_uri
    db_dir: Path = args.db_dir.resolve()
    started = time.monotonic()
    if args.command == "activate":
        activate(db_dir, args.name)
    else:
        if not args.data or not args.profile:
            parser.error("seed needs --data and --profile")
        data = load_data(args.data)
        seeder = Seeder(db_dir, args.name, data, data.profile(args.profile))
        seeder.run()
        log("seeded " + json.dumps({kind: len(ids) for kind, ids in sorted(seeder.ids.items())}))
    log(f"{args.command} {args.name}: {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
