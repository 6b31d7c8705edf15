"""Configuration: one validated file (TOML), environment overrides, sensible defaults.

Resolution order (later wins): defaults, ``<data_dir>/ordersync.toml`` or the file given with
``--config`` / ``ORDERSYNC_CONFIG``, then ``ORDERSYNC_DATA_DIR``, ``ORDERSYNC_STORE`` and ``ORDERSYNC_BUS``. Bad
configuration fails at start with a message naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ordersync.domain.errors import ConfigError

DEFAULT_DATA_DIR = Path(".ordersync")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(Strict):
    max_attempts: int = Field(default=5, ge=1, le=100)
    base_seconds: float = Field(default=1.0, gt=0)
    cap_seconds: float = Field(default=300.0, gt=0)


class WorkerSettings(Strict):
    poll_interval: float = Field(default=0.05, gt=0, le=10)
    max_idle_seconds: float = Field(default=0.5, gt=0, le=60,
                                    description="longest idle sleep; work published in-process wakes at once")
    lease_seconds: float = Field(default=15.0, gt=0)
    relay_batch: int = Field(default=100, ge=1, description="outbox rows per publish (with bus = nats://, the "
                             "default is 500: a broker round trip costs more than a local insert)")
    retry: RetrySettings = RetrySettings()
    health_port: int | None = Field(default=None, ge=1, le=65535, description="`ordersync worker` serves /health, "
                                    "/ready and /metrics on this port (--health-port overrides)")
    health_host: str = Field(default="127.0.0.1", description="the address the health port listens on (0.0.0.0: "
                             "every interface, for a scraper on another machine)")


def sqlite_url(data_dir: Path) -> str:
    """The embedded default store: ``ordersync.db`` in the data directory (created if missing)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'ordersync.db').resolve()}"


class ErpSettings(Strict):
    """One ERP instance. ``kind = "tryton"`` talks JSON-RPC to a trytond; ``"memory"`` is the in-process
    twin seeded with a demo profile (for tests and trying things out).

    ``max_concurrency`` is the most calls in flight to this ERP at once. On a PostgreSQL store it holds
    across every process sharing the store (all ``ordersync worker`` and API processes together; slots are
    advisory locks, freed by themselves when a process dies), so every process must be given the same
    value. On SQLite (one process) it is the limit of that process."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["tryton", "memory"] = "tryton"
    url: str | None = None
    database: str | None = None
    login: str = "ordersync"
    password: str | None = None
    password_env: str | None = None
    password_file: Path | None = Field(default=None, description="a file holding the password (mode 0600)")
    profile: str = "main"
    max_concurrency: int = Field(default=2, ge=1, le=64)
    call_timeout: float = Field(default=30.0, gt=0)
    wait_timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    failure_threshold: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=10.0, gt=0)
    #: change detection: the interval right after a change; it doubles while the ERP is quiet up to
    #: ``idle_poll_seconds`` (one cheap question per turn; a full read only when it says something moved)
    poll_seconds: float = Field(default=0.5, gt=0)
    idle_poll_seconds: float = Field(default=2.0, gt=0)
    #: the shortest interval while the hub is sending orders to this ERP (its own sales move stock: at
    #: poll_seconds every turn would read in full and take capacity from the orders)
    busy_poll_seconds: float = Field(default=2.0, gt=0)
    #: a full read at least this often, for what the one-call probe cannot see (Tryton: price lists)
    sweep_seconds: float = Field(default=600.0, gt=0)
    #: push (opt-in): subscribe to the ERP's own change signals and poll only when signalled, plus one
    #: probe every ``push_idle_poll_seconds`` (Tryton: on PostgreSQL, with the ordersync_changes module and
    #: ``[bus] allow_subscribe = True``; see docs/erp-push.md). Where the ERP cannot push, polling goes on
    push: bool = False
    push_idle_poll_seconds: float = Field(default=60.0, gt=0)
    submit_batch: int = Field(default=20, ge=1, le=500)
    #: where change detection starts on a hub that has never polled this ERP: "history" turns every
    #: shipment and invoice the ERP holds into events (a hub that submitted all of the ERP's orders);
    #: "now" takes them as they are, emitting only those of orders this hub holds (a hub joining an ERP
    #: with history: no fulfillment_discrepancy cases for the past). No effect once the hub has polled it.
    start_from: Literal["history", "now"] = "history"
    #: ISO 3166-2 subdivision -> the hub's region, for plants and ship-to addresses (Tryton has no region);
    #: unset: the demo manufacturer's map
    regions: dict[str, str] | None = None

    @model_validator(mode="after")
    def _remote_needs_address(self) -> ErpSettings:
        if self.kind == "tryton" and not (self.url and self.database):
            raise ValueError(f"ERP {self.name}: a tryton ERP needs url and database")
        return self

    def secret(self, env: dict[str, str] | None = None) -> str:
        env = dict(os.environ if env is None else env)
        if self.password_env:
            if self.password_env not in env:
                raise ConfigError(f"ERP {self.name}: environment variable {self.password_env} is not set")
            return env[self.password_env]
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"ERP {self.name}: cannot read password_file {self.password_file}: "
                                  f"{exc.strerror}") from exc
        if self.password is None:
            raise ConfigError(f"ERP {self.name}: set password_env or password_file")
        return self.password


class RoutingSettings(Strict):
    default: str | None = None
    accounts: dict[str, str] = Field(default_factory=dict)


class ChannelRuleSettings(Strict):
    name: str
    percent_off: Decimal = Field(gt=0, lt=100)
    description: str = ""
    channels: list[str] = Field(default_factory=list)
    campaigns: list[str] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    precedence: int = 100
    exclusive: bool = False


class FlowSettings(Strict):
    price_tolerance_percent: Decimal = Field(default=Decimal("0.5"), ge=0)
    channel_rules: list[ChannelRuleSettings] = Field(default_factory=list)
    allow_split: bool = True
    ship_days: int = Field(default=2, ge=0)
    backorder_days: int = Field(default=14, ge=0)
    max_days_ahead: int = Field(default=365, ge=1)
    submit_concurrency: int = Field(default=4, ge=1, le=64)
    #: orders being submitted at once: while a backlog waits, the ERP adapter sends them in one batch call
    #: (of at most the ERP's ``submit_batch``); Tryton confirms a batch for much less than its orders one
    #: by one. bench/erp_cost.py --short, one run each: 4 at a time 6.3 ERP requests and 397 ms of Tryton
    #: CPU per order, 8: 5.2 and 362 ms, 16: 4.1 and 278 ms; 16 also raised intake's p99 under load (a
    #: wave's handlers wake together and take the GIL from the API)
    submit_wave: int = Field(default=8, ge=1, le=500)


class ReadModelSettings(Strict):
    """The experience API's read model of prices, stock and catalogs.

    ``refresh_seconds``: entries older than this are re-read from the ERP by a background job (change
    events refresh them sooner). ``stale_after_seconds``: an answer older than this is marked stale.
    ``memory_seconds``: how often an API process brings into its memory the rows other processes
    refreshed (bounds how late their changes show; changes applied in this process show at once)."""

    refresh_seconds: float = Field(default=300.0, gt=0)
    stale_after_seconds: float = Field(default=900.0, gt=0)
    memory_seconds: float = Field(default=0.5, ge=0, le=60)
    max_skus: int = Field(default=50, ge=1, le=500)


class CaseSettings(Strict):
    owners: dict[str, str] = Field(default_factory=dict)
    due_hours: dict[str, float] = Field(default_factory=dict)
    escalation: dict[str, list[str]] = Field(default_factory=dict)
    channel_owners: dict[str, str] = Field(default_factory=dict, description="the team that owns a channel's "
                                           "order conflicts (an order number re-sent with other content)")
    check_seconds: float = Field(default=60.0, gt=0, description="how often overdue cases escalate (passed "
                                 "backorder promises are checked every ten minutes, or this if longer)")


class SlaSettings(Strict):
    """Seconds each SLA clock may run before it counts as a breach (``GET /v1/ops/sla``, ``/metrics``)."""

    ack_seconds: float = Field(default=300.0, gt=0, description="received -> accepted by the ERP")
    fulfillment_seconds: float = Field(default=2 * 86400.0, gt=0, description="accepted -> shipped")
    invoice_sync_seconds: float = Field(default=900.0, gt=0, description="posted in the ERP -> visible to the buyer")
    window_seconds: float = Field(default=86400.0, gt=0, description="orders received this long ago or later: "
                                  "the default of GET /v1/ops/sla and the window of /metrics")


class AlertRouteSettings(Strict):
    """Where one team is told (``[[alerts.route]]``): a Slack-compatible incoming webhook, e-mail addresses,
    or both. ``team = "*"`` is the route of every team without one of its own."""

    team: str = Field(min_length=1, max_length=64)
    webhook_url: str | None = Field(default=None, pattern=r"^https?://.+", max_length=500)
    webhook_url_env: str | None = Field(default=None, description="environment variable holding the webhook "
                                        "URL (an incoming webhook's URL is its secret)")
    emails: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _somewhere(self) -> AlertRouteSettings:
        if not (self.webhook_url or self.webhook_url_env or self.emails):
            raise ValueError(f"alerts route {self.team}: give webhook_url, webhook_url_env or emails")
        for address in self.emails:
            if "@" not in address.strip("@"):
                raise ValueError(f"alerts route {self.team}: {address!r} is not an e-mail address")
        return self

    def webhook(self, env: dict[str, str] | None = None) -> str | None:
        if self.webhook_url_env:
            env = dict(os.environ if env is None else env)
            if self.webhook_url_env not in env:
                raise ConfigError(f"alerts route {self.team}: environment variable {self.webhook_url_env} "
                                  "is not set")
            return env[self.webhook_url_env]
        return self.webhook_url


class SmtpSettings(Strict):
    """The mail server alerts are sent through (``[alerts.smtp]``)."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="upgrade the connection with STARTTLS before signing in")
    user: str | None = None
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    from_address: str = Field(pattern=r"^.+@.+$")
    timeout: float = Field(default=10.0, gt=0)

    def password(self, env: dict[str, str] | None = None) -> str | None:
        if not self.password_env:
            return None
        env = dict(os.environ if env is None else env)
        if self.password_env not in env:
            raise ConfigError(f"alerts.smtp: environment variable {self.password_env} is not set")
        return env[self.password_env]


class AlertSettings(Strict):
    """Cases past their due time and SLA breaches, told to their team (docs/alerts.md)."""

    route: list[AlertRouteSettings] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    public_base_url: str | None = Field(default=None, pattern=r"^https?://.+", description="this hub's public "
                                        "base URL: alerts link to the case or order in /ops under it")
    sla_teams: dict[str, str] = Field(default_factory=lambda: {"acknowledgment": "integration",
                                                               "fulfillment": "operations",
                                                               "invoice_sync": "finance"},
                                      description="SLA clock -> the team told of its breaches (level 1)")
    check_seconds: float = Field(default=60.0, gt=0, description="how often breaches are looked for and "
                                 "due notifications sent")
    digest_over: int = Field(default=5, ge=1, description="more new alerts than this for one team, kind and "
                             "level in one check are told as one digest (an ERP outage breaches many clocks)")
    max_attempts: int = Field(default=8, ge=1, le=100)
    base_seconds: float = Field(default=30.0, gt=0, description="wait after the first failed send; doubles")
    cap_seconds: float = Field(default=3600.0, gt=0)
    timeout: float = Field(default=10.0, gt=0, description="seconds a webhook POST may take")

    @model_validator(mode="after")
    def _consistent(self) -> AlertSettings:
        teams = [r.team for r in self.route]
        if len(set(teams)) != len(teams):
            raise ValueError(f"alerts: one route per team ({teams})")
        if self.smtp is None and any(r.emails for r in self.route):
            raise ValueError("alerts: routes with emails need an [alerts.smtp] server")
        unknown = set(self.sla_teams) - {"acknowledgment", "fulfillment", "invoice_sync"}
        if unknown:
            raise ValueError(f"alerts.sla_teams: unknown clock(s) {sorted(unknown)}; clocks are acknowledgment, "
                             "fulfillment, invoice_sync")
        return self


class EdiPartnerSettings(Strict):
    """One EDI trading partner (see docs/edi.md): who it is in the ISA, the ERP account its orders are
    for, its ship-to IDs (N1*ST N104) mapped to the account's addresses, and item IDs the ERP's customer
    part numbers do not resolve."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    interchange_qualifier: str = Field(min_length=1, max_length=4, description="ISA05, or the UNB sender's "
                                       "code qualifier (0007: 14 GLN, ZZZ mutually defined ...)")
    interchange_id: str = Field(min_length=1, max_length=35)
    dialect: Literal["X12", "EDIFACT"] = Field(default="X12", description="what we write to them; what they send "
                                               "is read in whichever it is")
    account_id: str = Field(min_length=1, max_length=120)
    channel: str = Field(default="", max_length=64, description="default: edi-<name>")
    ship_to: dict[str, str] = Field(default_factory=dict)
    items: dict[str, str] = Field(default_factory=dict)
    units: dict[str, str] = Field(default_factory=dict, description="X12 unit (PO103) -> ERP unit; EA is the "
                                  "product's own unit unless mapped")
    gs_id: str = Field(default="", max_length=15, description="their GS code (GS02/GS03); default: interchange_id")
    version: Literal["004010", "005010"] = Field(default="004010", description="the X12 version we write to them")
    usage: Literal["P", "T"] = Field(default="P", description="ISA15 of what we send: production or test")
    transport: Literal["none", "as2", "directory"] = Field(
        default="none", description="how documents reach them: none keeps them for `ordersync edi` (collected)")
    as2_url: str = Field(default="", max_length=500, description="their AS2 endpoint (transport = as2)")
    as2_id: str = Field(default="", max_length=128, description="their AS2 name (AS2-To); default: interchange_id")
    outbox_dir: str = Field(default="", max_length=500, description="where we write their files (directory)")
    inbox_dir: str = Field(default="", max_length=500, description="where we pick up their files (directory)")
    ack_hours: float = Field(default=24.0, gt=0, description="a 997 for what we send is due within this long")
    send_documents: bool = Field(default=True, description="send 855, 856 and 810 (false: acknowledgments only)")


class EdiSettings(Strict):
    """EDI trading partners, who we are in the envelopes, and how sending retries; a repeated
    interchange (same sender and control number) within ``duplicate_window_days`` is refused as a
    duplicate."""

    partners: list[EdiPartnerSettings] = Field(default_factory=list)
    duplicate_window_days: float = Field(default=30, gt=0)
    interchange_qualifier: str = Field(default="ZZ", min_length=1, max_length=4, description="our ISA05 (and UNB "
                                       "qualifier)")
    interchange_id: str = Field(default="ORDERSYNC", min_length=1, max_length=15, description="our ISA06 / UNB ID")
    gs_id: str = Field(default="", max_length=15, description="our GS02; default: interchange_id")
    as2_id: str = Field(default="", max_length=128, description="our AS2 name (AS2-From); default: interchange_id")
    poll_seconds: float = Field(default=2.0, gt=0, description="how often the sender and the pickup look")
    chase_seconds: float = Field(default=60.0, gt=0, description="how often overdue acknowledgments are looked for")
    max_attempts: int = Field(default=8, ge=1, description="sends of one interchange before it is a dead letter")
    base_seconds: float = Field(default=30.0, gt=0, description="first retry pause; doubles per attempt")
    cap_seconds: float = Field(default=3600.0, gt=0, description="longest retry pause")
    timeout: float = Field(default=30.0, gt=0, description="seconds to wait for an AS2 answer (and its MDN)")
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="largest interchange POST /as2 takes")


class ShopifyShopSettings(Strict):
    """One Shopify store selling B2B (see docs/shopify.md): where its Admin API is, the access token and
    webhook secret (from the environment: ``token_env`` / ``secret_env``; ``token`` / ``secret`` inline are
    for tests and demos), its plan (the cost budget the limiter paces to), the ERP plant behind each Shopify
    location, and explicit company mappings where external id and tax id do not say."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    domain: str = Field(min_length=3, max_length=255, description="the shop's myshopify.com domain")
    api_url: str = Field(default="", max_length=500, description="default https://<domain>; another base URL "
                         "(a test double) only for tests and demos")
    token_env: str | None = None
    token: str | None = None
    secret_env: str | None = Field(default=None, description="the app's client secret (webhook HMAC key)")
    secret: str | None = None
    plan: Literal["standard", "advanced", "plus", "enterprise"] = "standard"
    channel: str = Field(default="", max_length=64, description="the hub's channel name; default shopify-<name>")
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    locations: dict[str, str] = Field(default_factory=dict, description="ERP plant code -> Shopify location ID "
                                      "(gid://shopify/Location/...): stock goes there, fulfillments come from there")
    companies: dict[str, str] = Field(default_factory=dict, description="Shopify company or company location "
                                      "ID -> ERP account, where neither external id nor tax id matches")
    webhook_url: str = Field(default="", max_length=500, description="the hub's public URL of POST "
                             "/shopify/webhooks (for `ordersync shopify webhooks`)")
    reconcile_minutes: float = Field(default=10.0, gt=0, description="how often the sweep looks for orders no "
                                     "webhook brought")
    overlap_minutes: float = Field(default=15.0, ge=0, description="how far before its watermark each sweep starts "
                                   "(orders written late within Shopify's index are not missed)")
    stock_minutes: float = Field(default=15.0, ge=0, description="full stock push interval; 0: only on demand")
    prices_minutes: float = Field(default=360.0, ge=0, description="price push interval; 0: only on demand")
    quantity_breaks: list[int] = Field(default_factory=lambda: [10, 25, 50, 100, 250, 500], description="quantities "
                                       "the ERP is asked to price; a lower price there becomes a quantity break")
    notify_customer: bool = Field(default=True, description="Shopify e-mails the buyer on fulfillment")

    def access_token(self, env: dict[str, str] | None = None) -> str | None:
        values = os.environ if env is None else env
        return values.get(self.token_env) if self.token_env else self.token

    def webhook_secrets(self, env: dict[str, str] | None = None) -> list[str]:
        """The secrets a webhook may be signed with (comma-separated in the environment: rotation)."""
        values = os.environ if env is None else env
        value = values.get(self.secret_env) if self.secret_env else self.secret
        return [s.strip() for s in (value or "").split(",") if s.strip()]

    @property
    def channel_name(self) -> str:
        return self.channel or f"shopify-{self.name}"

    @property
    def base_url(self) -> str:
        return (self.api_url or f"https://{self.domain}").rstrip("/")


class ShopifySettings(Strict):
    """Shopify B2B stores and how the connector works them: webhook processing, outbound task retries."""

    shops: list[ShopifyShopSettings] = Field(default_factory=list)
    poll_seconds: float = Field(default=1.0, gt=0, description="how often kept webhooks and due tasks are looked at")
    max_attempts: int = Field(default=10, ge=1, description="tries of an outbound task before it is a dead letter")
    base_seconds: float = Field(default=10.0, gt=0, description="first retry pause; doubles per attempt")
    cap_seconds: float = Field(default=1800.0, gt=0, description="longest retry pause")
    timeout: float = Field(default=30.0, gt=0, description="seconds to wait for Shopify's answer")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="largest webhook body taken")

    def shop(self, name: str) -> ShopifyShopSettings | None:
        return next((s for s in self.shops if s.name == name), None)

    def by_domain(self, domain: str) -> ShopifyShopSettings | None:
        return next((s for s in self.shops if s.domain.lower() == domain.lower()), None)


class WmsSettings(Strict):
    """The warehouse webhook (``POST /v1/wms/events``): the HMAC-SHA256 secret it is signed with, read
    from the environment variable ``secret_env`` or the file ``secret_file`` (its content, trailing white
    space ignored; ``secret`` inline is for tests), and how far a signed timestamp may be from now before
    the request is refused as stale (replay protection)."""

    secret_env: str | None = None
    secret_file: Path | None = Field(default=None, description="a file holding the secret (mode 0600)")
    secret: str | None = None
    max_age_seconds: int = Field(default=300, ge=1, le=3600)

    def signing_key(self, env: dict[str, str] | None = None) -> bytes | None:
        """The secret as bytes, or None when none is configured (the webhook then refuses everything)."""
        values = os.environ if env is None else env
        if self.secret_env:
            value = values.get(self.secret_env)
        elif self.secret_file is not None:
            try:
                value = self.secret_file.read_text().strip()
            except OSError:
                value = None
        else:
            value = self.secret
        return value.encode() if value else None


class WebhookSettings(Strict):
    """Outbound event subscriptions (``ordersync subscriptions``): how the worker sends webhooks.
    Answers 408/429/5xx and timeouts are retried (backoff from ``base_seconds`` doubling up to
    ``cap_seconds``, dead-lettered after ``max_attempts``); a subscriber nothing reaches is probed every
    ``wait_cap_seconds`` at most and uses up no attempts. Delivered ones are kept ``keep_days``."""

    poll_seconds: float = Field(default=0.25, gt=0, le=60)
    timeout: float = Field(default=10.0, gt=0, le=300)
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    concurrency: int = Field(default=4, ge=1, le=64)
    batch: int = Field(default=20, ge=1, le=500)
    max_attempts: int = Field(default=10, ge=1, le=100)
    base_seconds: float = Field(default=2.0, gt=0)
    cap_seconds: float = Field(default=900.0, gt=0)
    wait_cap_seconds: float = Field(default=60.0, gt=0)
    keep_days: float = Field(default=7.0, gt=0)


class RetentionSettings(Strict):
    """How long the hub keeps messaging records it no longer needs; a worker prunes every
    ``check_seconds`` (``ordersync prune`` runs one pass by hand).

    Older than ``keep_days`` go: outbox events every consumer is done with (embedded bus: no delivery of
    the event pending; NATS bus: below every consumer's gap-repair low-water mark), a consumer's record
    of a message it processed (the inbox row that makes a redelivery a no-op), and API idempotency keys
    (a storefront retry after that is still recognised as a duplicate by its order number, answered
    ``duplicate: true`` rather than replayed). Orders, cases, dead letters and transitions are business
    records and stay. ``keep_days = 0`` keeps everything. On a NATS bus ``keep_days`` must exceed
    ``nats.max_age_days``: the broker may redeliver a message for as long as it holds it."""

    keep_days: float = Field(default=30.0, ge=0)
    check_seconds: float = Field(default=3600.0, gt=0)
    batch: int = Field(default=5000, ge=1, le=100_000, description="rows deleted per statement")


class ReconcileSettings(Strict):
    """Reconciliation of the hub with its ERPs and channels (docs/reconciliation.md): a worker runs it in full
    every ``interval_seconds`` (0: never on its own; ``ordersync reconcile`` still runs it by hand)."""

    interval_seconds: float = Field(default=3600.0, ge=0, description="how often the worker reconciles (0: off)")
    settle_seconds: float = Field(default=900.0, ge=0, description="a shipment, invoice, sale or return state "
                                  "discrepancy opens a case only when it lasts this long (the change poller "
                                  "may be catching up)")
    page: int = Field(default=500, ge=1, le=5000, description="hub orders read per query")


class NatsSettings(Strict):
    """The NATS JetStream bus (``bus = "nats://host:port,nats://host:port,..."``), see docs/scale-out.md.

    ``replicas``: copies of each stream. Unset: a process uses the streams as they are, and creates
    missing ones with 3 copies on a cluster of three or more nodes, 1 on a single server. Set: streams
    that have another number (or other storage settings) make the process refuse to start; only
    ``ordersync nats migrate`` changes existing streams (ADR 0023).
    ``partitions``: subject partitions per event family (one order's events share one).
    ``max_deliver``: the broker's own bound on deliveries of a message (a safety net: handler failures
    are counted by the hub, against ``worker.retry.max_attempts``); a message that reaches it is
    republished by gap repair. ``duplicate_window_seconds``: publish deduplication by message id.
    ``gap_grace_seconds``: an event a consumer has not processed this long after it was published,
    while the broker has nothing left for that consumer, is republished to it from the outbox;
    ``gap_stuck_seconds``: after this long it is republished even while the consumer has a backlog.
    ``gap_check_seconds``: how often the repair loop looks. ``gap_horizon_seconds``: the repair loop's
    low-water mark (where it starts reading, and the bound for outbox retention) only passes outbox
    sequences that were visible this long ago; a transaction that drew an outbox sequence and commits
    later than this is still delivered by the broker, but is out of gap repair's sight."""

    replicas: int | None = Field(default=None, ge=1, le=5)
    partitions: int = Field(default=16, ge=1, le=1024)
    max_deliver: int = Field(default=2000, ge=2)
    ack_wait_seconds: float = Field(default=10.0, gt=0, le=3600, description="a delivery nobody answers (its "
                                    "worker died) is redelivered after this; work in progress is extended")
    duplicate_window_seconds: float = Field(default=120.0, gt=0)
    max_age_days: float = Field(default=7.0, gt=0)
    buffer: int = Field(default=10, ge=1, le=10_000, description="messages prefetched per consumer: at least this "
                        "many, or one batch of the consumer if more")
    connect_timeout: float = Field(default=20.0, gt=0)
    publish_timeout: float = Field(default=10.0, gt=0)
    prefix: str = Field(default="ordersync", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    gap_grace_seconds: float = Field(default=30.0, gt=0)
    gap_stuck_seconds: float = Field(default=600.0, gt=0)
    gap_check_seconds: float = Field(default=5.0, gt=0)
    gap_horizon_seconds: float = Field(default=60.0, gt=0)
    monitor_urls: list[str] = Field(default_factory=list, description="each node's HTTP monitoring endpoint "
                                    "(http://host:8222, the node's `http:` setting): `ordersync doctor` reads "
                                    "sync_interval and the cluster's size there")


class HealthSettings(Strict):
    """What ``/ready`` holds against (docs/scale-out.md): worker heartbeats in the store, lag thresholds."""

    heartbeat_seconds: float = Field(default=5.0, gt=0, le=300, description="how often a running worker "
                                     "writes its heartbeat")
    worker_stale_seconds: float = Field(default=20.0, gt=0, description="a worker whose last beat is older is "
                                        "missing (not ready when no worker is live)")
    forget_after_seconds: float = Field(default=3600.0, gt=0, description="a missing worker is reported (degraded) "
                                        "this long, then its heartbeat is removed")
    require_worker: bool = Field(default=True, description="no live worker makes the hub not ready")
    outbox_lag_seconds: float = Field(default=60.0, gt=0, description="oldest unpublished event older: degraded")
    consumer_pending: int = Field(default=10_000, ge=1, description="messages waiting for one consumer at the "
                                  "broker above this: degraded")
    probe_timeout_seconds: float = Field(default=2.0, gt=0, le=30, description="longest wait for each NATS "
                                         "stream or consumer answer")

    @model_validator(mode="after")
    def _beats_within_threshold(self) -> HealthSettings:
        if self.worker_stale_seconds <= self.heartbeat_seconds:
            raise ValueError("health: worker_stale_seconds must exceed heartbeat_seconds")
        return self


class OidcSettings(Strict):
    """Signing in with OpenID Connect (staff on ``/ops``, invited buyers on ``/portal``): the provider's
    issuer (its discovery document is read from ``<issuer>/.well-known/openid-configuration``), this hub's
    client, and how the provider's claims become roles. The redirect URIs to register with the provider
    are ``<base>/ops/oidc/callback`` and ``<base>/portal/oidc/callback``."""

    issuer: str = Field(pattern=r"^https?://.+")
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    client_secret_env: str | None = Field(default=None, description="environment variable holding the secret")
    display_name: str = Field(default="your company account", description="shown on the sign-in button")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile", "roles"])
    roles_claim: str = Field(default="roles", description="the claim (a list or a space-separated string) with "
                             "the person's groups or roles")
    role_map: dict[str, str] = Field(default_factory=dict, description="claim value -> ordersync staff role; "
                                     "values that already are role names need no entry")
    buyers: bool = Field(default=True, description="invited buyers may sign in with this provider too")
    redirect_base: str | None = Field(default=None, description="this hub's public base URL (default: the "
                                      "request's own, behind a trusted proxy its forwarded one)")

    def secret(self) -> str | None:
        if self.client_secret_env:
            return os.environ.get(self.client_secret_env)
        return self.client_secret


class TelemetrySettings(Strict):
    """Traces (OpenTelemetry, see docs/observability.md): off by default; ``enabled = true`` exports every
    process's spans over OTLP/HTTP to ``endpoint`` (default: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else http://127.0.0.1:4318/v1/traces).
    ``ORDERSYNC_TELEMETRY=1`` in the environment turns it on too."""

    enabled: bool = False
    endpoint: str | None = Field(default=None, pattern=r"^https?://.+", description="OTLP/HTTP traces URL")
    service_name: str = Field(default="ordersync", min_length=1, max_length=100)
    export_timeout: float = Field(default=10.0, gt=0, le=120)


class LoggingSettings(Strict):
    """Log lines: ``format`` text (for people, the default), json (one JSON object a line, with trace id,
    order id and consumer) or auto (text on a terminal, JSON otherwise); ``--log-format`` and
    ``ORDERSYNC_LOG_FORMAT`` override it, as ``--log-level`` overrides ``level``."""

    format: Literal["text", "json", "auto"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class WebSettings(Strict):
    """The pages for people (``/ops``, ``/portal``): sign-in, cookies, proxies."""

    trusted_proxies: list[str] = Field(default_factory=list, description="addresses or networks (CIDR) of the "
                                       "reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are "
                                       "believed; nobody else's are")
    secure_cookies: Literal["auto", "always"] = Field(default="auto", description="auto: Secure when the request "
                                                      "came over https (directly or from a trusted proxy)")
    signin_failures_per_source: int = Field(default=100, ge=1, description="failed sign-ins per 15 minutes from "
                                            "one address before its unknown browsers must wait")
    signin_failures_per_person: int = Field(default=10, ge=1, description="failed sign-ins per 15 minutes for one "
                                            "e-mail address before unknown browsers must wait")
    oidc: OidcSettings | None = None
    tracking_urls: dict[str, str] = Field(default_factory=dict, description="carrier name -> tracking page URL "
                                          "with {number} for the tracking number; added to (and overriding) the "
                                          "portal's defaults for DHL, UPS, DPD, FedEx and GLS")
    seller: list[str] = Field(default_factory=list, description="the seller's name and address, a line each, "
                              "at the head of the portal's PDFs (order confirmations, invoices)")


class Settings(Strict):
    """Everything a hub process needs to start."""

    data_dir: Path = DEFAULT_DATA_DIR
    store: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite under data_dir")
    bus: str = Field(default="embedded", pattern=r"^(embedded|nats://.+)$",
                     description="'embedded' (queues in the store) or nats://host:port[,nats://host:port...]")
    nats: NatsSettings = NatsSettings()
    worker: WorkerSettings = WorkerSettings()
    erp: list[ErpSettings] = Field(default_factory=list)
    routing: RoutingSettings = RoutingSettings()
    flows: FlowSettings = FlowSettings()
    cases: CaseSettings = CaseSettings()
    sla: SlaSettings = SlaSettings()
    alerts: AlertSettings = AlertSettings()
    read_model: ReadModelSettings = ReadModelSettings()
    webhooks: WebhookSettings = WebhookSettings()
    wms: WmsSettings = WmsSettings()
    edi: EdiSettings = EdiSettings()
    shopify: ShopifySettings = ShopifySettings()
    retention: RetentionSettings = RetentionSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    web: WebSettings = WebSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    logging: LoggingSettings = LoggingSettings()
    health: HealthSettings = HealthSettings()
    source: str = Field(default="defaults", exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [e.name for e in self.erp]
        if len(set(names)) != len(names):
            raise ValueError(f"ERP names must be unique: {names}")
        for account, name in self.routing.accounts.items():
            if name not in names:
                raise ValueError(f"routing: account {account} routes to unknown ERP {name!r}")
        if self.routing.default and self.routing.default not in names:
            raise ValueError(f"routing: default ERP {self.routing.default!r} is not configured")
        keep = self.retention.keep_days
        if self.bus.startswith("nats://") and keep and keep <= self.nats.max_age_days:
            raise ValueError(f"retention: keep_days ({keep:g}) must exceed nats.max_age_days "
                             f"({self.nats.max_age_days:g}): the broker may redeliver a message that old, and "
                             "only the inbox record of it makes the redelivery a no-op")
        return self

    @property
    def store_url(self) -> str:
        return self.store or sqlite_url(self.data_dir)


def load_settings(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    store: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    file = config_file or (Path(env["ORDERSYNC_CONFIG"]) if env.get("ORDERSYNC_CONFIG") else None)
    resolved_dir = data_dir or (Path(env["ORDERSYNC_DATA_DIR"]) if env.get("ORDERSYNC_DATA_DIR") else None)
    if file is None:
        candidate = (resolved_dir or DEFAULT_DATA_DIR) / "ordersync.toml"
        file = candidate if candidate.exists() else None
    if file is not None:
        if not file.exists():
            raise ConfigError(f"config file {file} does not exist")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
        data["source"] = str(file)
    if resolved_dir is not None:
        data["data_dir"] = resolved_dir
    if store or env.get("ORDERSYNC_STORE"):
        data["store"] = store or env["ORDERSYNC_STORE"]
    if env.get("ORDERSYNC_BUS"):
        data["bus"] = env["ORDERSYNC_BUS"]
    if env.get("ORDERSYNC_TELEMETRY", "").strip().lower() in ("1", "true", "yes", "on"):
        data.setdefault("telemetry", {})["enabled"] = True
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({data.get('source', 'defaults')}): {problems}") from exc
