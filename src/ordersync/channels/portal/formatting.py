"""Money, quantities and dates as the buyer reads them, in their language (Babel).

Why here and not in the templates: the API answers prices as exact decimal strings ("81.6000") and
quantities as the ERP keeps them ("0.0"); a buyer reads "81,60 €" in German and "€81.60" in English, and
"10" pieces, never "10.000000". The locale comes from the browser's ``Accept-Language`` (the portal speaks
:data:`SUPPORTED`; anything else is :data:`DEFAULT`), so no setting is needed.

For every portal page, not only the buying ones: importing this module registers the Jinja filters
``money`` (``{{ amount | money(currency) }}``), ``qty`` (``{{ quantity | qty }}``) and ``day``
(``{{ date | day }}``) on the shared template environment; they read the locale from the template's
``request``. Python code (PDFs, messages) calls :func:`money`, :func:`qty` and :func:`day` with a locale
from :func:`locale_of`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.requests import Request

from ordersync.web import templates

SUPPORTED = ("en", "de", "fr")
DEFAULT = "en"


def locale_of(accept_language: str | None) -> str:
    """The supported locale the browser prefers most (``Accept-Language``, by q-value), else :data:`DEFAULT`."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in SUPPORTED and weight > 0:
            ranked.append((-weight, i, language))
    return min(ranked)[2] if ranked else DEFAULT


def request_locale(request: Request | None) -> str:
    return locale_of(request.headers.get("accept-language")) if request is not None else DEFAULT


def decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal (from a Decimal, number or the API's decimal string), else None."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def money(value: Any, currency: str | None, locale: str = DEFAULT) -> str:
    """An amount with its currency in the locale's way ("81,60 €", "€81.60"); "—" when there is none."""
    number = decimal(value)
    if number is None:
        return "—"
    if not currency:
        return format_decimal(number, format="#,##0.00", locale=locale)
    return format_currency(number, currency, locale=locale)


def qty(value: Any, locale: str = DEFAULT) -> str:
    """A quantity without spurious decimals ("10", "2.5", "1,250"; "0" for "0.0")."""
    number = decimal(value)
    if number is None:
        return "—"
    if number == number.to_integral_value():
        return format_decimal(number.quantize(Decimal(1)), format="#,##0", locale=locale)
    return format_decimal(number.normalize(), format="#,##0.######", locale=locale)


def day(value: Any, locale: str = DEFAULT) -> str:
    """A date in the locale's medium form ("5 Dec 2026", "05.12.2026"); "" for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    return format_date(value, format="medium", locale=locale)


def _locale(context: Context) -> str:
    request = context.get("request")
    return request_locale(request if isinstance(request, Request) else None)


@pass_context
def _money_filter(context: Context, value: Any, currency: str | None = None) -> str:
    return money(value, currency, _locale(context))


@pass_context
def _qty_filter(context: Context, value: Any) -> str:
    return qty(value, _locale(context))


@pass_context
def _day_filter(context: Context, value: Any) -> str:
    return day(value, _locale(context))


templates.env.filters.update(money=_money_filter, qty=_qty_filter, day=_day_filter)
