"""Seed facts of the demo Tryton ERP: the single source for the seeding script and for tests.

Plain data plus a few pure helpers, standard library only: ``scripts/provision.py`` loads this file by
path inside the Tryton virtual environment (where ``ordersync`` is not installed), and the hub's tests
import it as ``ordersync.devkit.demo_data`` to assert against what the ERP was seeded with.

Most of its 700 lines are the seed itself (companies, customers, products, price lists): data, not code.

Money and quantities are decimal strings (exact, JSON friendly). Price list lines are evaluated in
order, first match wins, exactly like Tryton; the last line of every price list is a catch-all.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, NotRequired, TypedDict

SCHEMA_VERSION: Final = 1


class User(TypedDict):
    """A Tryton user created in every profile database."""

    login: str
    password: str
    name: str
    email: str
    groups: list[str]  # "module.xml_id" of res.group records


class Address(TypedDict):
    """A party or warehouse address; ``region`` is the hub's routing region (not a Tryton field)."""

    key: str  # stable handle, stored in Tryton as the address' building_name
    street: str
    postal_code: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    subdivision: str  # ISO 3166-2
    region: str
    invoice: bool
    delivery: bool


class Warehouse(TypedDict):
    """A plant: a Tryton warehouse with its own input/output/storage/production/lost-found zones."""

    code: str
    name: str
    region: str
    address: Address


class Product(TypedDict):
    """A stocked good. ``stock`` is on-hand quantity per warehouse code (absent = 0).

    ``minimum_quantity`` / ``pack_multiple`` (absent = none) become Tryton's ``sale_quantity_minimal`` /
    ``sale_quantity_rounding`` (trytond-sale-product-quantity): a draft sale line below the minimum or
    not a multiple of the pack is refused with a validation error.
    """

    sku: str  # Tryton product code
    name: str
    category: str
    unit: str  # product.uom symbol
    list_price: str
    cost_price: str
    stock: dict[str, int]
    minimum_quantity: NotRequired[int]
    pack_multiple: NotRequired[int]


class PriceListLine(TypedDict, total=False):
    """One contract price rule: at most one of ``discount`` (fraction off list) or ``price`` (fixed)."""

    sku: str
    category: str
    min_quantity: int
    discount: str
    price: str


class PartNumber(TypedDict):
    """A customer's own part number for one of our SKUs (Tryton ``sale.product_customer``)."""

    sku: str
    code: str
    name: str


class Customer(TypedDict):
    """A customer party with its tax identifier, contract price list, credit limit and ship-to addresses.

    ``tax_id`` is a Tryton ``party.identifier`` of type ``tax_id_type`` (``eu_vat``: an EU VAT number,
    ``us_ein``: a U.S. EIN), written as Tryton formats it; Tryton checks it with python-stdnum, so it must
    be valid (German VAT numbers: ``DE`` + 8 digits + the ISO 7064 Mod 11,10 check digit).
    """

    code: str
    name: str
    kind: str  # distributor | field_service | enterprise | industrial
    active: bool
    email: str
    tax_id: str
    tax_id_type: str  # a Tryton identifier type of a tax identifier: eu_vat | us_ein
    credit_limit: str
    payment_term: str  # the name of one of the profile's payment_terms
    price_list: list[PriceListLine]
    part_numbers: list[PartNumber]
    addresses: list[Address]


class SaleLine(TypedDict):
    """A sale line of a seeded order."""

    sku: str
    quantity: int


class OpenSale(TypedDict):
    """A sale confirmed during seeding (counts toward credit and forecast, not yet shipped/invoiced)."""

    reference: str
    customer: str
    warehouse: str
    ship_to: str  # address key
    lines: list[SaleLine]


class PaymentTerm(TypedDict):
    """A payment term: the whole amount due ``days`` after the invoice date."""

    name: str
    days: int


class Country(TypedDict):
    """A country with the subdivisions the seed addresses use (code, name, Tryton type)."""

    code: str
    name: str
    subdivisions: list[tuple[str, str, str]]


class Company(TypedDict):
    """The company of a profile database."""

    name: str
    currency: str
    currency_name: str
    currency_symbol: str
    address: Address


class Profile(TypedDict):
    """One ERP database's worth of demo data."""

    key: str
    database: str  # default database name
    company: Company
    countries: list[Country]
    regions: dict[str, str]  # region -> preferred warehouse code
    warehouses: list[Warehouse]
    payment_terms: list[PaymentTerm]
    categories: list[str]
    products: list[Product]
    customers: list[Customer]
    open_sales: list[OpenSale]
    rest_key: NotRequired[str]


ADMIN: Final[User] = {
    "login": "admin",
    "password": "kestrel-demo-admin",
    "name": "Administrator",
    "email": "admin@example.com",
    "groups": [],
}

INTEGRATION_USER: Final[User] = {
    "login": "ordersync",
    "password": "ordersync-demo-integration",
    "name": "ordersync integration",
    "email": "ordersync@example.com",
    # in the stock-quantity and credit-limit groups, so those checks raise warnings, not hard errors
    "groups": [
        "sale.group_sale",
        "sale.group_sale_admin",
        "sale_amendment.group_sale_amendment",
        "sale_stock_quantity.group_sale_stock_quantity",
        "account_credit_limit.group_credit_limit",
        "stock.group_stock",
        "stock.group_stock_force_assignment",
        "account.group_account",
        "party.group_party_admin",
    ],
}


class Carrier(TypedDict):
    """A carrier (trytond-carrier): a party and the service product Tryton charges its deliveries with.

    The warehouse simulators put one on a shipment with a tracking number in its style
    (:func:`tracking_number`); the hub reports the party's name as the shipment's carrier.
    """

    name: str  # the carrier party's name: the canonical Shipment.carrier
    code: str  # the carrier party's code
    service_code: str  # the carrier product (a service, not salable: never in the catalog)
    service: str
    cost_price: str  # what one delivery costs (Tryton spreads it over the shipment's moves)
    tracking_prefix: str
    tracking_length: int  # digits in all, the prefix and a trailing GS1 check digit included


#: the carriers seeded into every profile database; the first is the simulators' default
CARRIERS: Final[list[Carrier]] = [
    {
        "name": "DHL Paket",
        "code": "CAR-DHL",
        "service_code": "SHIP-DHL-PAKET",
        "service": "DHL Paket parcel delivery",
        "cost_price": "6.90",
        "tracking_prefix": "00340434",  # DHL's 20-digit parcel numbers
        "tracking_length": 20,
    },
    {
        "name": "DB Schenker",
        "code": "CAR-SCHENKER",
        "service_code": "SHIP-DBS-SYSTEM",
        "service": "DB Schenker system freight",
        "cost_price": "48.50",
        "tracking_prefix": "18",  # 10-digit consignment numbers
        "tracking_length": 10,
    },
]


def _addr(
    key: str,
    street: str,
    postal: str,
    city: str,
    country: str,
    sub: str,
    region: str,
    *,
    invoice: bool = False,
    delivery: bool = True,
) -> Address:
    return {
        "key": key,
        "street": street,
        "postal_code": postal,
        "city": city,
        "country": country,
        "subdivision": sub,
        "region": region,
        "invoice": invoice,
        "delivery": delivery,
    }


def _products(
    rows: list[tuple[str, str, str, str, str, dict[str, int]]],
    sale_quantities: dict[str, tuple[int | None, int | None]] | None = None,
) -> list[Product]:
    """Rows are (sku, name, category, unit, list price, stock); cost price is 55 % of list.
    ``sale_quantities`` maps a SKU to (minimum quantity, pack multiple), either may be None."""
    products: list[Product] = []
    for sku, name, cat, unit, price, stock in rows:
        product: Product = {
            "sku": sku,
            "name": name,
            "category": cat,
            "unit": unit,
            "list_price": price,
            "cost_price": str((Decimal(price) * Decimal("0.55")).quantize(Decimal("0.01"))),
            "stock": {wh: qty for wh, qty in stock.items() if qty},
        }
        minimum, pack = (sale_quantities or {}).get(sku, (None, None))
        if minimum is not None:
            product["minimum_quantity"] = minimum
        if pack is not None:
            product["pack_multiple"] = pack
        products.append(product)
    return products


def _ns(north: int, south: int) -> dict[str, int]:
    return {"PLANT-N": north, "PLANT-S": south}


_MAIN_PRODUCTS = _products(
    [
        ("BRG-6204-2RS", "Deep groove ball bearing 6204-2RS", "Bearings", "u", "7.80", _ns(420, 380)),
        ("BRG-6205-2RS", "Deep groove ball bearing 6205-2RS", "Bearings", "u", "8.90", _ns(300, 0)),
        ("BRG-6206-ZZ", "Deep groove ball bearing 6206-ZZ", "Bearings", "u", "11.40", _ns(0, 260)),
        ("BRG-6308-2RS", "Deep groove ball bearing 6308-2RS", "Bearings", "u", "24.50", _ns(85, 60)),
        ("BRG-22210-E1", "Spherical roller bearing 22210 E1", "Bearings", "u", "96.00", _ns(14, 6)),
        ("BRG-32008-X", "Tapered roller bearing 32008 X", "Bearings", "u", "31.20", _ns(40, 55)),
        ("BRG-NU210-ECP", "Cylindrical roller bearing NU 210 ECP", "Bearings", "u", "58.70", _ns(3, 0)),
        ("BRG-UCP205", "Pillow block bearing unit UCP205", "Bearings", "u", "19.90", _ns(150, 140)),
        ("BRG-7205-BEP", "Angular contact ball bearing 7205 BEP", "Bearings", "u", "42.60", _ns(0, 0)),
        ("BRG-51108", "Thrust ball bearing 51108", "Bearings", "u", "9.70", _ns(75, 2)),
        ("VLV-BV-DN25-SS", "Ball valve DN25 stainless, 2-piece", "Valves", "u", "64.00", _ns(120, 90)),
        ("VLV-BV-DN50-SS", "Ball valve DN50 stainless, 2-piece", "Valves", "u", "148.00", _ns(40, 25)),
        ("VLV-GV-DN80-CI", "Gate valve DN80 cast iron PN16", "Valves", "u", "212.00", _ns(12, 0)),
        ("VLV-CV-DN40-BR", "Swing check valve DN40 brass", "Valves", "u", "57.50", _ns(0, 65)),
        (
            "VLV-SV-24V-G12",
            "Solenoid valve G1/2 24 V DC normally closed",
            "Valves",
            "u",
            "89.00",
            _ns(60, 48),
        ),
        ("VLV-BFV-DN100", "Butterfly valve DN100 wafer EPDM", "Valves", "u", "176.00", _ns(8, 10)),
        ("VLV-PRV-G34-10", "Pressure relief valve G3/4 10 bar", "Valves", "u", "73.00", _ns(5, 4)),
        ("VLV-NV-G14-SS", "Needle valve G1/4 stainless", "Valves", "u", "38.40", _ns(200, 0)),
        ("VLV-ACT-PN-DA60", "Pneumatic actuator double-acting DA60", "Valves", "u", "265.00", _ns(0, 0)),
        ("VLV-3W-DN20-SS", "3-way ball valve DN20 L-port stainless", "Valves", "u", "96.00", _ns(18, 22)),
        ("FIT-ELB-G12-SS", "Elbow 90 deg G1/2 stainless", "Fittings", "u", "4.60", _ns(1500, 1200)),
        ("FIT-TEE-G12-SS", "Tee G1/2 stainless", "Fittings", "u", "5.90", _ns(900, 1100)),
        ("FIT-NIP-G34-BR", "Hex nipple G3/4 brass", "Fittings", "u", "2.85", _ns(2500, 0)),
        ("FIT-RED-G1-G12", "Reducing bush G1 x G1/2 brass", "Fittings", "u", "3.40", _ns(0, 1800)),
        ("FIT-CPL-G1-SS", "Socket coupling G1 stainless", "Fittings", "u", "6.20", _ns(640, 520)),
        ("FIT-QC-G14-ST", "Quick coupler G1/4 steel", "Fittings", "u", "11.30", _ns(300, 260)),
        ("FIT-FLG-DN50-PN16", "Weld-neck flange DN50 PN16", "Fittings", "u", "27.90", _ns(60, 45)),
        ("FIT-CMP-12MM-SS", "Compression fitting 12 mm stainless", "Fittings", "u", "8.75", _ns(700, 20)),
        ("FIT-PTC-8MM", "Push-in fitting 8 mm straight", "Fittings", "u", "1.95", _ns(4000, 3500)),
        ("FIT-UNI-G1-BR", "Union G1 brass", "Fittings", "u", "9.80", _ns(9, 0)),
        ("MOT-IE3-0.75-4P", "IE3 motor 0.75 kW 4-pole B3", "Motors", "u", "218.00", _ns(30, 26)),
        ("MOT-IE3-1.5-4P", "IE3 motor 1.5 kW 4-pole B3", "Motors", "u", "289.00", _ns(22, 18)),
        ("MOT-IE3-4.0-4P", "IE3 motor 4.0 kW 4-pole B3", "Motors", "u", "468.00", _ns(7, 11)),
        ("MOT-IE3-7.5-4P", "IE3 motor 7.5 kW 4-pole B3", "Motors", "u", "742.00", _ns(2, 0)),
        ("MOT-IE4-11-4P", "IE4 motor 11 kW 4-pole B35", "Motors", "u", "1385.00", _ns(0, 3)),
        ("MOT-GM-0.37-I20", "Helical gear motor 0.37 kW i=20", "Motors", "u", "512.00", _ns(6, 6)),
        ("MOT-SRV-400W", "AC servo motor 400 W with encoder", "Motors", "u", "689.00", _ns(0, 0)),
        ("MOT-VFD-2.2", "Variable frequency drive 2.2 kW", "Motors", "u", "398.00", _ns(15, 12)),
        ("SEN-PX-M12-NPN", "Inductive proximity sensor M12 NPN", "Sensors", "u", "24.90", _ns(600, 480)),
        ("SEN-PX-M18-PNP", "Inductive proximity sensor M18 PNP", "Sensors", "u", "27.40", _ns(350, 0)),
        ("SEN-PT-0-10B", "Pressure transmitter 0-10 bar 4-20 mA", "Sensors", "u", "139.00", _ns(45, 38)),
        ("SEN-TT-PT100", "PT100 temperature sensor 100 mm", "Sensors", "u", "46.50", _ns(120, 95)),
        ("SEN-FLW-MAG-DN25", "Magnetic flow meter DN25", "Sensors", "u", "1240.00", _ns(2, 1)),
        ("SEN-LVL-RAD-10M", "Radar level sensor 10 m", "Sensors", "u", "980.00", _ns(0, 4)),
        ("SEN-VIB-4-20", "Vibration transmitter 4-20 mA", "Sensors", "u", "312.00", _ns(16, 0)),
        ("SEN-PHO-DIFF", "Diffuse photoelectric sensor 300 mm", "Sensors", "u", "33.80", _ns(240, 210)),
        ("HOS-HYD-2SN-12", "Hydraulic hose 2SN DN12, per metre", "Hoses & Seals", "m", "9.40", _ns(800, 650)),
        (
            "HOS-PU-8X6",
            "Polyurethane tubing 8x6 mm, per metre",
            "Hoses & Seals",
            "m",
            "0.95",
            _ns(5000, 4200),
        ),
        ("SEL-OR-NBR-KIT", "O-ring kit NBR, 382 pieces", "Hoses & Seals", "u", "29.00", _ns(40, 35)),
        ("SEL-GSK-DN50-PTFE", "PTFE gasket DN50", "Hoses & Seals", "u", "6.40", _ns(300, 0)),
    ],
    # (minimum quantity, pack multiple): small fittings ship in bags of 10, push-in fittings only from
    # 50 up in bags of 10, hoses are cut from the reel from 5 m up
    {
        "FIT-TEE-G12-SS": (None, 10),
        "FIT-NIP-G34-BR": (None, 10),
        "FIT-RED-G1-G12": (None, 10),
        "FIT-PTC-8MM": (50, 10),
        "HOS-HYD-2SN-12": (5, None),
        "HOS-PU-8X6": (5, None),
    },
)

_DE = "DE"

MAIN: Final[Profile] = {
    "key": "main",
    "database": "main",
    "company": {
        "name": "Kestrel Components GmbH",
        "currency": "EUR",
        "currency_name": "Euro",
        "currency_symbol": "€",
        "address": _addr("KESTREL-HQ", "Billbrookdeich 210", "22113", "Hamburg", _DE, "DE-HH", "north", invoice=True),
    },
    "countries": [
        {
            "code": _DE,
            "name": "Germany",
            "subdivisions": [
                ("DE-HH", "Hamburg", "land"),
                ("DE-HB", "Bremen", "land"),
                ("DE-NI", "Niedersachsen", "land"),
                ("DE-MV", "Mecklenburg-Vorpommern", "land"),
                ("DE-NW", "Nordrhein-Westfalen", "land"),
                ("DE-BY", "Bayern", "land"),
                ("DE-BW", "Baden-Württemberg", "land"),
            ],
        }
    ],
    "regions": {"north": "PLANT-N", "south": "PLANT-S"},
    "warehouses": [
        {
            "code": "PLANT-N",
            "name": "Plant North (Hamburg)",
            "region": "north",
            "address": _addr("PLANT-N", "Billbrookdeich 210", "22113", "Hamburg", _DE, "DE-HH", "north"),
        },
        {
            "code": "PLANT-S",
            "name": "Plant South (Augsburg)",
            "region": "south",
            "address": _addr("PLANT-S", "Werner-von-Siemens-Str. 6", "86159", "Augsburg", _DE, "DE-BY", "south"),
        },
    ],
    "payment_terms": [{"name": "Net 30", "days": 30}, {"name": "Net 60", "days": 60}],
    "categories": ["Bearings", "Valves", "Fittings", "Motors", "Sensors", "Hoses & Seals"],
    "products": _MAIN_PRODUCTS,
    "customers": [
        {
            "code": "C-1001",
            "name": "Rheinland Industrial Supply GmbH",
            "kind": "distributor",
            "active": True,
            "email": "orders@rheinland-supply.example",
            "tax_id": "DE128503471",
            "tax_id_type": "eu_vat",
            "credit_limit": "250000.00",
            "payment_term": "Net 30",
            "price_list": [
                {"sku": "MOT-VFD-2.2", "price": "329.00"},
                {"category": "Bearings", "min_quantity": 100, "discount": "0.20"},
                {"category": "Bearings", "discount": "0.15"},
                {"category": "Fittings", "discount": "0.20"},
                {"category": "Sensors", "discount": "0.10"},
                {},
            ],
            "part_numbers": [
                {"sku": "BRG-6204-2RS", "code": "RIS-100-6204", "name": "Rillenkugellager 6204 2RS"},
                {"sku": "FIT-ELB-G12-SS", "code": "RIS-220-0412", "name": "Winkel 90 G1/2 VA"},
                {"sku": "SEN-PX-M12-NPN", "code": "RIS-510-1201", "name": "Ini-Schalter M12 NPN"},
            ],
            "addresses": [
                _addr("RIS-DUS", "Hansaallee 301", "40549", "Düsseldorf", _DE, "DE-NW", "north", invoice=True),
                _addr("RIS-STR", "Heilbronner Str. 380", "70469", "Stuttgart", _DE, "DE-BW", "south"),
            ],
        },
        {
            "code": "C-1002",
            "name": "Alpen Field Service GmbH",
            "kind": "field_service",
            "active": True,
            "email": "dispatch@alpen-fs.example",
            "tax_id": "DE819427364",
            "tax_id_type": "eu_vat",
            "credit_limit": "60000.00",
            "payment_term": "Net 30",
            "price_list": [
                {"sku": "SEN-PT-0-10B", "price": "119.00"},
                {"sku": "VLV-SV-24V-G12", "price": "79.50"},
                {"category": "Sensors", "discount": "0.08"},
                {"category": "Valves", "discount": "0.10"},
                {},
            ],
            "part_numbers": [
                {"sku": "SEN-PX-M12-NPN", "code": "AFS-SNS-0012", "name": "Proximity M12 NPN"},
                {"sku": "VLV-SV-24V-G12", "code": "AFS-VLV-024", "name": "Magnetventil 24V"},
            ],
            "addresses": [
                _addr("AFS-MUC", "Landsberger Str. 155", "80687", "München", _DE, "DE-BY", "south", invoice=True),
                _addr("AFS-NUE", "Südwestpark 40", "90449", "Nürnberg", _DE, "DE-BY", "south"),
                _addr("AFS-HAM", "Pinkertweg 18", "22113", "Hamburg", _DE, "DE-HH", "north"),
            ],
        },
        {
            "code": "C-1003",
            "name": "Hanse Automotive Werke AG",
            "kind": "enterprise",
            "active": True,
            "email": "procurement@hanse-auto.example",
            "tax_id": "DE115396285",
            "tax_id_type": "eu_vat",
            "credit_limit": "1500000.00",
            "payment_term": "Net 60",
            "price_list": [
                {"sku": "MOT-IE3-1.5-4P", "price": "249.00"},
                {"sku": "MOT-IE3-4.0-4P", "price": "405.00"},
                {"sku": "SEN-PX-M12-NPN", "price": "19.80"},
                {"sku": "FIT-PTC-8MM", "price": "1.45"},
                {"sku": "BRG-6205-2RS", "price": "7.10"},
                {"sku": "HOS-PU-8X6", "price": "0.78"},
                {"category": "Motors", "discount": "0.12"},
                {},
            ],
            "part_numbers": [
                {"sku": "MOT-IE3-1.5-4P", "code": "HAW-4711-0150", "name": "Drehstrommotor 1,5 kW"},
                {"sku": "MOT-IE3-4.0-4P", "code": "HAW-4711-0400", "name": "Drehstrommotor 4 kW"},
                {"sku": "SEN-PX-M12-NPN", "code": "HAW-5520-0012", "name": "Näherungsschalter M12"},
                {"sku": "FIT-PTC-8MM", "code": "HAW-6630-0008", "name": "Steckverschraubung 8 mm"},
                {"sku": "BRG-6205-2RS", "code": "HAW-3301-6205", "name": "Kugellager 6205"},
                {"sku": "HOS-PU-8X6", "code": "HAW-7710-0806", "name": "PU-Schlauch 8x6"},
                {"sku": "VLV-SV-24V-G12", "code": "HAW-8120-0024", "name": "Magnetventil G1/2"},
            ],
            "addresses": [
                _addr(
                    "HAW-BRE",
                    "Hemelinger Hafendamm 2",
                    "28309",
                    "Bremen",
                    _DE,
                    "DE-HB",
                    "north",
                    invoice=True,
                ),
                _addr("HAW-WOB", "Heinrich-Nordhoff-Str. 99", "38440", "Wolfsburg", _DE, "DE-NI", "north"),
                _addr("HAW-ING", "Ettinger Str. 70", "85057", "Ingolstadt", _DE, "DE-BY", "south"),
            ],
        },
        {
            "code": "C-1004",
            "name": "Ostsee Pumpen & Anlagen KG",
            "kind": "industrial",
            "active": True,
            "email": "einkauf@ostsee-pumpen.example",
            "tax_id": "DE137164022",
            "tax_id_type": "eu_vat",
            "credit_limit": "36000.00",
            "payment_term": "Net 30",
            "price_list": [{"category": "Motors", "discount": "0.05"}, {}],
            "part_numbers": [],
            "addresses": [
                _addr("OPA-ROS", "Am Seehafen 12", "18147", "Rostock", _DE, "DE-MV", "north", invoice=True),
            ],
        },
        {
            "code": "C-1005",
            "name": "Mittelstand Maschinenbau GmbH",
            "kind": "industrial",
            "active": False,
            "email": "info@mm-maschinenbau.example",
            "tax_id": "DE127904681",
            "tax_id_type": "eu_vat",
            "credit_limit": "20000.00",
            "payment_term": "Net 30",
            "price_list": [{}],
            "part_numbers": [],
            "addresses": [
                _addr(
                    "MMB-AUG",
                    "Haunstetter Str. 112",
                    "86161",
                    "Augsburg",
                    _DE,
                    "DE-BY",
                    "south",
                    invoice=True,
                ),
            ],
        },
    ],
    # brings C-1004 to 33 853.50 of its 36 000.00 credit limit
    "open_sales": [
        {
            "reference": "SEED-C-1004-0001",
            "customer": "C-1004",
            "warehouse": "PLANT-N",
            "ship_to": "OPA-ROS",
            "lines": [
                {"sku": "VLV-BV-DN25-SS", "quantity": 100},
                {"sku": "VLV-BV-DN50-SS", "quantity": 35},
                {"sku": "SEN-PT-0-10B", "quantity": 40},
                {"sku": "MOT-IE3-0.75-4P", "quantity": 25},
                {"sku": "MOT-IE3-1.5-4P", "quantity": 20},
                {"sku": "FIT-FLG-DN50-PN16", "quantity": 50},
                {"sku": "SEN-TT-PT100", "quantity": 100},
            ],
        },
    ],
    "rest_key": "ordersync-demo-rest-key-main-4f1c2a7e9b3d",
}

_US = "US"

ACQUIRED: Final[Profile] = {
    "key": "acquired",
    "database": "acquired",
    "company": {
        "name": "Vallora Fluid Systems Inc.",
        "currency": "USD",
        "currency_name": "U.S. Dollar",
        "currency_symbol": "$",
        "address": _addr("VALLORA-HQ", "8800 Clinton Dr", "77029", "Houston", _US, "US-TX", "gulf", invoice=True),
    },
    "countries": [
        {
            "code": _US,
            "name": "United States",
            "subdivisions": [
                ("US-TX", "Texas", "state"),
                ("US-LA", "Louisiana", "state"),
                ("US-OK", "Oklahoma", "state"),
            ],
        }
    ],
    "regions": {"gulf": "VFS-HOU"},
    "warehouses": [
        {
            "code": "VFS-HOU",
            "name": "Houston Plant",
            "region": "gulf",
            "address": _addr("VFS-HOU", "8800 Clinton Dr", "77029", "Houston", _US, "US-TX", "gulf"),
        },
    ],
    "payment_terms": [{"name": "Net 30", "days": 30}, {"name": "Net 45", "days": 45}],
    "categories": ["Pumps", "Valves", "Spares"],
    "products": _products(
        [
            ("VFS-PMP-CF-2X1", "Centrifugal pump 2x1x6 ANSI", "Pumps", "u", "2450.00", {"VFS-HOU": 6}),
            ("VFS-PMP-DIA-1", "Air-operated diaphragm pump 1 in", "Pumps", "u", "1180.00", {"VFS-HOU": 14}),
            ("VFS-VLV-PLG-2", "Plug valve 2 in class 150", "Valves", "u", "385.00", {"VFS-HOU": 40}),
            (
                "VFS-VLV-BV-3-CS",
                "Ball valve 3 in carbon steel class 150",
                "Valves",
                "u",
                "512.00",
                {"VFS-HOU": 22},
            ),
            ("VFS-SEA-MECH-138", "Mechanical seal 1.375 in", "Spares", "u", "268.00", {"VFS-HOU": 30}),
            ("VFS-STR-Y-2", "Y-strainer 2 in", "Valves", "u", "194.00", {}),
            ("VFS-GSK-SPW-2", "Spiral-wound gasket 2 in class 150", "Spares", "u", "12.40", {"VFS-HOU": 600}),
            ("VFS-GAU-0-300", "Pressure gauge 0-300 psi 4 in dial", "Spares", "u", "58.00", {"VFS-HOU": 75}),
        ]
    ),
    "customers": [
        {
            "code": "C-2001",
            "name": "Gulf Coast Process Supply LLC",
            "kind": "distributor",
            "active": True,
            "email": "po@gcps.example",
            "tax_id": "72-1548306",
            "tax_id_type": "us_ein",
            "credit_limit": "120000.00",
            "payment_term": "Net 30",
            "price_list": [
                {"sku": "VFS-PMP-DIA-1", "price": "1050.00"},
                {"category": "Spares", "discount": "0.10"},
                {},
            ],
            "part_numbers": [{"sku": "VFS-GSK-SPW-2", "code": "GCPS-GK-0200", "name": "SW gasket 2in"}],
            "addresses": [
                _addr("GCPS-BTR", "4500 Choctaw Dr", "70805", "Baton Rouge", _US, "US-LA", "gulf", invoice=True),
            ],
        },
        {
            "code": "C-2002",
            "name": "Permian Field Services Co.",
            "kind": "field_service",
            "active": True,
            "email": "supply@permian-fs.example",
            "tax_id": "75-2960417",
            "tax_id_type": "us_ein",
            "credit_limit": "50000.00",
            "payment_term": "Net 45",
            "price_list": [{"category": "Valves", "discount": "0.07"}, {}],
            "part_numbers": [{"sku": "VFS-SEA-MECH-138", "code": "PFS-SEAL-138", "name": "Mech seal 1-3/8"}],
            "addresses": [
                _addr("PFS-MAF", "2200 W Industrial Ave", "79701", "Midland", _US, "US-TX", "gulf", invoice=True),
                _addr("PFS-ODS", "5100 E Business 20", "79761", "Odessa", _US, "US-TX", "gulf"),
            ],
        },
    ],
    "open_sales": [],
}

PROFILES: Final[dict[str, Profile]] = {"main": MAIN, "acquired": ACQUIRED}


def profile(key: str) -> Profile:
    """The profile named ``key`` (``main`` or ``acquired``)."""
    try:
        return PROFILES[key]
    except KeyError:
        raise KeyError(f"unknown demo profile {key!r}; known: {sorted(PROFILES)}") from None


def product(prof: Profile, sku: str) -> Product:
    """The seeded product with this SKU."""
    return next(p for p in prof["products"] if p["sku"] == sku)


def customer(prof: Profile, code: str) -> Customer:
    """The seeded customer with this party code."""
    return next(c for c in prof["customers"] if c["code"] == code)


def price_from_rules(rules: list[PriceListLine], prod: Product, quantity: int | Decimal = 1) -> Decimal | None:
    """Tryton's price list evaluation: the first line matching product, category and quantity gives the
    unit price (4 decimals); None when no line matches."""
    list_price = Decimal(prod["list_price"])
    for line in rules:
        if "sku" in line and line["sku"] != prod["sku"]:
            continue
        if "category" in line and line["category"] != prod["category"]:
            continue
        if abs(Decimal(quantity)) < line.get("min_quantity", 0):
            continue
        discount = Decimal(line.get("discount", "0"))
        price = Decimal(line["price"]) if "price" in line else list_price * (1 - discount)
        return price.quantize(Decimal("0.0001"))
    return None


def contract_price(prof: Profile, customer_code: str, sku: str, quantity: int | Decimal = 1) -> Decimal:
    """The unit price the customer's price list gives (first matching line wins, 4 decimals)."""
    price = price_from_rules(customer(prof, customer_code)["price_list"], product(prof, sku), quantity)
    if price is None:
        raise ValueError(f"price list of {customer_code} has no catch-all line")
    return price


def minimum_quantity(prof: Profile, sku: str) -> Decimal:
    """The smallest quantity a sale line of ``sku`` may have: the seeded minimum, else the pack, else 1."""
    prod = product(prof, sku)
    return Decimal(prod.get("minimum_quantity") or prod.get("pack_multiple") or 1)


def pack_multiple(prof: Profile, sku: str) -> Decimal:
    """The multiple sale quantities of ``sku`` must be (1 when the product has no pack)."""
    return Decimal(product(prof, sku).get("pack_multiple") or 1)


def quantity_allowed(prof: Profile, sku: str, quantity: int | Decimal) -> bool:
    """True when Tryton accepts ``quantity`` of ``sku`` on a draft sale line (minimum and pack)."""
    prod = product(prof, sku)
    quantity = Decimal(quantity)
    minimum = prod.get("minimum_quantity")
    pack = prod.get("pack_multiple")
    return (minimum is None or quantity >= minimum) and (pack is None or quantity % pack == 0)


def on_hand(prof: Profile, sku: str, warehouse: str) -> int:
    """Seeded on-hand quantity of a SKU in a warehouse."""
    return product(prof, sku)["stock"].get(warehouse, 0)


def forecast(prof: Profile, sku: str, warehouse: str) -> int:
    """On hand minus what the seeded open sales will take from that warehouse."""
    taken = sum(
        line["quantity"]
        for sale in prof["open_sales"]
        if sale["warehouse"] == warehouse
        for line in sale["lines"]
        if line["sku"] == sku
    )
    return on_hand(prof, sku, warehouse) - taken


def subdivision_regions(prof: Profile | None = None) -> dict[str, str]:
    """ISO 3166-2 subdivision -> the hub's routing region, as the seed's addresses use them (every profile
    when ``prof`` is None). Tryton addresses have no region: the adapter derives it with this map."""
    regions: dict[str, str] = {}
    for p in [prof] if prof is not None else list(PROFILES.values()):
        addresses = [p["company"]["address"], *(w["address"] for w in p["warehouses"])]
        addresses += [a for c in p["customers"] for a in c["addresses"]]
        for address in addresses:
            regions.setdefault(address["subdivision"], address["region"])
    return regions


def credit_exposure(prof: Profile, customer_code: str) -> Decimal:
    """Amount of the customer's seeded open (confirmed, uninvoiced) sales: Tryton's credit_amount."""
    return sum(
        (
            contract_price(prof, customer_code, line["sku"], line["quantity"]) * line["quantity"]
            for sale in prof["open_sales"]
            if sale["customer"] == customer_code
            for line in sale["lines"]
        ),
        Decimal(0),
    ).quantize(Decimal("0.01"))


def carrier(name: str) -> Carrier:
    """The seeded carrier whose party is called ``name``."""
    try:
        return next(c for c in CARRIERS if c["name"] == name)
    except StopIteration:
        raise KeyError(f"unknown demo carrier {name!r}; known: {[c['name'] for c in CARRIERS]}") from None


def tracking_number(carrier: Carrier, serial: int) -> str:
    """A tracking number in the carrier's style for shipment ``serial`` (deterministic): its prefix, the
    serial zero-padded (its last digits if too long), then the GS1 mod-10 check digit."""
    width = carrier["tracking_length"] - len(carrier["tracking_prefix"]) - 1
    body = f"{carrier['tracking_prefix']}{serial % 10**width:0{width}d}"
    weighted = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return f"{body}{-weighted % 10}"
