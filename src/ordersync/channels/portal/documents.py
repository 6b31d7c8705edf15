"""The buyer portal's documents and the facts they share with its pages: order confirmations and invoices
as PDF (WeasyPrint, from the templates under ``web/templates/portal/pdf/``; money, quantities and dates
through :mod:`.formatting`, in the buyer's language), the account's currency, and carriers' tracking
links.

Why PDFs rendered here and not fetched from the ERP: a buyer's accounts-payable clerk files what the portal
shows, and the hub has every fact of the order and its invoices already (the projections of the ERP's
documents); the PDF is the same page printed, so it cannot say something else than the portal does. It
is rendered on request, never stored: a re-read after a change shows the change.

Why a map of tracking URLs: carriers' tracking pages take the tracking number in the URL; the defaults
cover the parcel carriers the demo's ERP uses (DHL, UPS, DPD, FedEx, GLS), ``[web] tracking_urls`` adds
or overrides (``{number}`` is replaced, URL-encoded). An unknown carrier gets no link rather than a
guessed one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from ordersync.canonical.v1 import Address
from ordersync.channels.portal import formatting  # noqa: F401  (the money, qty and day filters)
from ordersync.channels.portal.session import Buyer, hub_of
from ordersync.domain.errors import DomainError, IntegrationError
from ordersync.web import TEMPLATES_DIR, templates

log = logging.getLogger("ordersync.portal")

PDF_CSS = TEMPLATES_DIR / "portal" / "pdf" / "document.css"

#: carrier (lower case) -> tracking page, ``{number}`` replaced by the tracking number
TRACKING_URLS: dict[str, str] = {
    "dhl": "https://www.dhl.com/de-en/home/tracking/tracking-parcel.html?submit=1&tracking-id={number}",
    "ups": "https://www.ups.com/track?loc=en_US&tracknum={number}",
    "dpd": "https://tracking.dpd.de/status/en_US/parcel/{number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "gls": "https://gls-group.com/track/{number}",
}


def tracking_url(carrier: str | None, number: str | None, configured: Mapping[str, str] | None = None) -> str | None:
    """The carrier's tracking page for ``number``; None when either is missing or the carrier is unknown.
    A carrier is matched by name, case-insensitively, also by its first word ("DHL Paket" is DHL)."""
    if not carrier or not number:
        return None
    urls = {**TRACKING_URLS, **{k.strip().lower(): v for k, v in (configured or {}).items()}}
    name = carrier.strip().lower()
    template = urls.get(name) or urls.get(name.split()[0] if name.split() else name)
    if template is None or "{number}" not in template:
        return None
    return template.replace("{number}", quote(number.strip(), safe=""))


def render_pdf(request: Request, name: str, context: dict[str, Any]) -> bytes:
    """The template ``portal/pdf/<name>`` as a PDF, money, quantities and dates in the buyer's language
    (:mod:`.formatting`'s filters, which read it from ``request``). WeasyPrint is imported here: it loads
    fonts and libraries the pages do not need."""
    from weasyprint import CSS, HTML  # type: ignore[import-untyped]  # WeasyPrint ships no type information

    html = templates.get_template(f"portal/pdf/{name}").render({"request": request, **context})
    pdf: bytes = HTML(string=html).write_pdf(stylesheets=[CSS(filename=str(PDF_CSS))])
    return pdf


#: account id -> (its currency, when the ERP said so): orders taken in the portal carry no currency of
#: their own (the ERP prices them in the account's), and the pages should not ask the ERP on every view
_CURRENCIES: dict[str, tuple[str, float]] = {}
CURRENCY_SECONDS = 600.0


def account_currency(request: Request, account_id: str) -> str:
    """The account's currency as its ERP has it (remembered for ten minutes); "" when the ERP cannot say."""
    hub = hub_of(request)
    now = hub.clock.monotonic()
    known = _CURRENCIES.get(account_id)
    if known is not None and now - known[1] < CURRENCY_SECONDS:
        return known[0]
    if hub.erps is None:
        return ""
    try:
        currency = hub.erps.for_account(account_id).account(account_id).currency
    except (DomainError, IntegrationError) as exc:
        log.info("no currency for account %s now: %s", account_id, exc)
        return known[0] if known else ""
    _CURRENCIES[account_id] = (currency, now)
    return currency


def parties(request: Request, buyer: Buyer) -> dict[str, Any]:
    """The PDF's seller (``[web] seller``) and buyer (the account as its ERP knows it: name, billing
    address, VAT ID, payment terms; only the account id when the ERP cannot be asked right now)."""
    hub = hub_of(request)
    account_id = buyer.account_id
    party: dict[str, Any] = {"id": account_id, "name": account_id, "address": [], "tax_id": None,
                             "payment_terms": None}
    if hub.erps is not None:
        try:
            account = hub.erps.for_account(account_id).account(account_id)
        except (DomainError, IntegrationError) as exc:
            log.info("the PDF names account %s by its id: %s", account_id, exc)
        else:
            party.update(name=account.name, tax_id=account.tax_id, payment_terms=account.payment_terms,
                         address=_address(account.ship_to[0]) if account.ship_to else [])
    return {"seller": hub.settings.web.seller or ["ordersync"], "buyer_party": party}


def _address(a: Address) -> list[str]:
    return [x for x in (a.street, " ".join(p for p in (a.postal_code, a.city) if p), a.country) if x]


def pdf_response(pdf: bytes, filename: str) -> Response:
    """A PDF shown in the browser (``inline``), saved under ``filename``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in filename)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{safe}"', "Cache-Control": "no-store",
                             "X-Content-Type-Options": "nosniff"})
