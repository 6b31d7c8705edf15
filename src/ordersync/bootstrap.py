"""The composition root: the one place that builds concrete adapters and wires them together, and that
says which consumer runs on which message (:func:`build_registry`).

Nothing here runs at import time; :func:`build_hub` does the work when called.
"""

from __future__ import annotations

import functools

import httpx

from ordersync.adapters.alerts import SmtpAlertSender, SmtpMailer, WebhookAlertSender
from ordersync.adapters.erp.budget import budget_for
from ordersync.adapters.erp.factory import make_erp
from ordersync.adapters.erp.guard import ErpGate
from ordersync.adapters.erp.guarded import GuardedErp
from ordersync.adapters.erp.router import ErpRouter
from ordersync.adapters.webhooks import HttpWebhookSender
from ordersync.canonical.v1 import Account, CaseType
from ordersync.channels.edi import documents as edi_documents
from ordersync.channels.edi.channel import EdiChannel, partners_of
from ordersync.channels.edi.reconcile import EdiChecks
from ordersync.channels.shopify import outbound as shopify_outbound
from ordersync.channels.shopify.channel import ShopifyChannel
from ordersync.channels.shopify.reconcile import ShopifyChecks
from ordersync.config import ErpSettings, Settings
from ordersync.domain.alerts import AlertPolicy, AlertRoute, Channel
from ordersync.domain.allocation import AllocationPolicy
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock, SystemClock
from ordersync.domain.errors import ConfigError
from ordersync.domain.pricing import ChannelRule
from ordersync.domain.sla import SlaClock, SlaThresholds
from ordersync.flows.deps import FlowDeps, FlowPolicy
from ordersync.flows.handlers import backorders, counters, documents, fulfillment, orders, returns
from ordersync.flows.jobs import escalate_overdue, flag_passed_promises
from ordersync.flows.services.workbench import Workbench, dead_letter_cases
from ordersync.messaging.consumer import ConsumerRunner
from ordersync.messaging.deadletters import DeadLetterService
from ordersync.messaging.gaps import GapRepair, register_consumers
from ordersync.messaging.heartbeat import Heartbeat
from ordersync.messaging.nats import NatsTransport, parse_servers
from ordersync.messaging.registry import Registry
from ordersync.messaging.relay import Relay
from ordersync.messaging.retention import Retention
from ordersync.messaging.retry import RetryPolicy
from ordersync.messaging.sqlqueue import SqlQueueTransport
from ordersync.messaging.worker import Worker
from ordersync.ports.alerts import AlertSender
from ordersync.ports.erp import ErpPort, Erps
from ordersync.reads.alerts import sla_breaches
from ordersync.runtime import outbound
from ordersync.runtime import readmodel as readmodel_consumers
from ordersync.runtime.alerts import AlertDispatcher
from ordersync.runtime.contracts import DriftRecorder
from ordersync.runtime.erp_changes import Cadence, ErpChangePoller
from ordersync.runtime.hub import Hub
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.runtime.readmodel import ReadModel
from ordersync.runtime.reconcile import ChannelCheck, Reconciler
from ordersync.runtime.webhooks import WebhookDispatcher
from ordersync.store.db import Database
from ordersync.store.uow import SqlStore
from ordersync.telemetry import tracing


def build_registry(deps: FlowDeps | None = None, model: ReadModel | None = None,
                   settings: Settings | None = None) -> Registry:
    """Every subscription of the hub: which consumer runs on which message. Without ERP dependencies only
    the projections, the fulfillment record and outbound webhooks run; with EDI partners configured, the
    documents we send them (855, 856, 810) are written by ``edi.documents``; with Shopify shops, what goes
    back to Shopify (fulfillments, cancellations, refunds) is written by ``shopify.outbound``."""
    registry = Registry()
    if settings is not None and settings.edi.partners:
        edi_documents.register(registry, *partners_of(settings.edi))
    if settings is not None and settings.shopify.shops:
        shopify_outbound.register(registry, settings.shopify.shops)
    counters.register(registry)
    documents.register(registry)
    outbound.register(registry)
    fulfillment.register(registry, deps.cases if deps is not None else CasePolicy())
    if deps is not None:
        orders.register(registry, deps)
        backorders.register(registry, deps)
        returns.register(registry, deps)
    if model is not None:
        readmodel_consumers.register(registry, model)
    return registry


def build_hub(settings: Settings, *, clock: Clock | None = None, registry: Registry | None = None,
              migrate: bool = True, erps: dict[str, ErpPort] | None = None,
              shopify_transport: httpx.BaseTransport | None = None, erp_secrets: bool = True) -> Hub:
    """Wire a hub. ``erps`` replaces the ERP adapters the settings describe (tests pass twins);
    ``shopify_transport`` routes Shopify calls to a double (tests, the demo). ``erp_secrets=False``: the
    ERP passwords are read when an adapter first logs in, not now (commands that never call the ERP)."""
    clock = clock or SystemClock()
    configure_telemetry(settings)
    db = Database(settings.store_url)
    if migrate:
        db.migrate()
    store = SqlStore(db, clock)
    router = poller = deps = readmodel = None
    drift = DriftRecorder(db, clock, case_policy(settings))  # what the ERP's reads answer, measured
    adapters = erps if erps is not None else {e.name: make_erp(e, drift, secret_now=erp_secrets)
                                              for e in settings.erp}
    if adapters:
        router = _router(settings, adapters, db, clock)
        rm = settings.read_model
        readmodel = ReadModel(db, clock, router, refresh_seconds=rm.refresh_seconds,
                              stale_after_seconds=rm.stale_after_seconds, memory_seconds=rm.memory_seconds)
        deps = FlowDeps(store=store, clock=clock, erps=router, policy=flow_policy(settings),
                        cases=case_policy(settings), submit_concurrency=settings.flows.submit_concurrency,
                        submit_wave=settings.flows.submit_wave, catalogs=readmodel)
        poller = ErpChangePoller(router, db, clock, cadence={
            e.name: Cadence(fast=e.poll_seconds, idle=max(e.poll_seconds, e.idle_poll_seconds), sweep=e.sweep_seconds,
                            busy=e.busy_poll_seconds, push=e.push,
                            push_idle=max(e.poll_seconds, e.push_idle_poll_seconds))
            for e in settings.erp}, start_from_now=[e.name for e in settings.erp if e.start_from == "now"])
    registry = registry or build_registry(deps, readmodel, settings)
    retry = settings.worker.retry
    policy = RetryPolicy(max_attempts=retry.max_attempts, base_seconds=retry.base_seconds,
                         cap_seconds=retry.cap_seconds)
    registry = _with_default_retry(registry, policy)
    register_consumers(db, registry, clock)
    transport = _transport(settings, db)
    runner = ConsumerRunner(db, transport, registry, clock, lease_seconds=settings.worker.lease_seconds)
    relay_batch = settings.worker.relay_batch
    if isinstance(transport, NatsTransport) and "relay_batch" not in settings.worker.model_fields_set:
        relay_batch = 500
    relay = Relay(db, transport, clock, batch_size=relay_batch)
    worker = Worker(relay, runner, registry, clock, poll_interval=settings.worker.poll_interval,
                    max_idle=settings.worker.max_idle_seconds)
    transport.on_publish(worker.wake_consumers)
    db.on_events_committed(worker.wake)
    dead = DeadLetterService(db, transport, registry, clock)
    cases = case_policy(settings)
    runner.dead_letter_hooks.append(dead_letter_cases(cases))  # every dead letter becomes a case
    worker.every(settings.cases.check_seconds, "case escalation", lambda: escalate_overdue(store, clock, cases),
                 singleton=True)
    if deps is not None:  # promises are dates: every ten minutes is soon enough
        worker.every(max(600.0, settings.cases.check_seconds), "backorder promises",
                     lambda: flag_passed_promises(store, clock, cases), singleton=True)
    if poller is not None:
        # the job looks often; the poller decides per ERP whether its turn has come (poll_due)
        seconds = min((e.poll_seconds for e in settings.erp), default=0.5) / 2
        worker.every(seconds, "erp change poll", poller.poll_due, singleton=True)
        worker.every(3600, "erp change log prune", poller.prune, singleton=True)
        for erp in poller.pushes():  # each push subscription waits in a thread of its own
            worker.alongside(f"erp {erp} change signals", functools.partial(poller.listen, erp),
                             on_stop=functools.partial(poller.unsubscribe, erp))
    if readmodel is not None:
        worker.every(min(60.0, settings.read_model.refresh_seconds), "read model refresh", readmodel.refresh_due,
                     singleton=True)
        if poller is not None:  # order preparation takes stock from the read model while the poller runs
            readmodel.follows = poller.following
    gaps = None
    if isinstance(transport, NatsTransport):  # the embedded transport publishes in the outbox's transaction
        n = settings.nats
        gaps = GapRepair(db, transport, registry, clock, grace_seconds=n.gap_grace_seconds,
                         stuck_seconds=n.gap_stuck_seconds, horizon_seconds=n.gap_horizon_seconds)
        worker.every(n.gap_check_seconds, "gap repair", gaps.run, singleton=True)
    keep = settings.retention
    retention = Retention(db, clock, registry, keep_days=keep.keep_days, gap_tracked=gaps is not None,
                          batch=keep.batch)
    if keep.keep_days:
        worker.every(keep.check_seconds, "retention", lambda: retention.run().total, singleton=True)
    health = settings.health  # while the worker loop runs, its heartbeat says so (/ready)
    heartbeat = Heartbeat(db, clock, worker.consumers, every=health.heartbeat_seconds,
                          forget_after=health.forget_after_seconds, health_port=settings.worker.health_port)
    worker.alongside("heartbeat", heartbeat.run, on_stop=heartbeat.stop)
    intake = IntakeWriter(db, clock, on_commit=worker.wake, cases=cases)
    webhooks = _webhooks(settings, db, clock, runner, worker)
    edi = None
    if settings.edi.partners:
        edi = EdiChannel.build(settings.edi, db, clock, intake, cases, deps)
        edi.schedule(worker, settings.edi.poll_seconds, settings.edi.chase_seconds, single_worker=db.is_sqlite)
    shopify = None
    if settings.shopify.shops:
        shopify = ShopifyChannel.build(settings.shopify, db, clock, intake, cases, deps,
                                       functools.partial(_all_accounts, router), transport=shopify_transport)
        shopify.schedule(worker, single_worker=db.is_sqlite)
    alerts = build_alerts(settings, db, clock, cases)
    if settings.alerts.route:  # no route at all: alerts are off (nothing recorded, nothing sent)
        worker.every(settings.alerts.check_seconds, "alerts", alerts.run, singleton=True)
    reconciler = _reconciler(settings, db, store, router, clock, worker, edi, shopify)
    workbench = Workbench(store, cases, dead, deps)
    if reconciler is not None:
        workbench.recheck = reconciler.recheck
    return Hub(settings=settings, clock=clock, db=db, store=store, transport=transport, registry=registry,
               runner=runner, relay=relay, worker=worker, dead_letters=dead, intake=intake,
               workbench=workbench, webhooks=webhooks, retention=retention, erps=router,
               poller=poller, deps=deps, readmodel=readmodel, gap_repair=gaps, edi=edi,
               shopify=shopify, alerts=alerts, mailer=smtp_mailer(settings), reconciler=reconciler,
               heartbeat=heartbeat)


def alert_policy(settings: Settings, cases: CasePolicy) -> AlertPolicy:
    """Who is told of what: ``[alerts]`` routes and SLA teams, the escalation chains of ``[cases]``."""
    a = settings.alerts
    routes = {r.team: AlertRoute(team=r.team, webhook_url=r.webhook(), emails=tuple(r.emails)) for r in a.route}
    return AlertPolicy(routes=routes, sla_teams={SlaClock(k): v for k, v in a.sla_teams.items()},
                       escalation=cases.escalation, public_base_url=a.public_base_url)


def alert_senders(settings: Settings, *, transport: httpx.BaseTransport | None = None
                  ) -> dict[Channel, AlertSender]:
    a = settings.alerts
    senders: dict[Channel, AlertSender] = {Channel.WEBHOOK: WebhookAlertSender(timeout=a.timeout, transport=transport)}
    mailer = smtp_mailer(settings)
    if mailer is not None:
        senders[Channel.EMAIL] = SmtpAlertSender(mailer)
    return senders


def smtp_mailer(settings: Settings) -> SmtpMailer | None:
    """E-mail through ``[alerts.smtp]`` (alerts, invitations); None when no server is configured."""
    s = settings.alerts.smtp
    if s is None:
        return None
    return SmtpMailer(host=s.host, port=s.port, from_address=s.from_address, starttls=s.starttls, user=s.user,
                      password=s.password(), timeout=s.timeout)


def build_alerts(settings: Settings, db: Database, clock: Clock, cases: CasePolicy) -> AlertDispatcher:
    """The alert job: escalated cases and SLA breaches, told to their teams (docs/alerts.md)."""
    a = settings.alerts
    policy = alert_policy(settings, cases)
    s = settings.sla
    limits = SlaThresholds(acknowledgment=s.ack_seconds, fulfillment=s.fulfillment_seconds,
                           invoice_sync=s.invoice_sync_seconds)
    return AlertDispatcher(db, clock, policy, alert_senders(settings),
                           retry=RetryPolicy(max_attempts=a.max_attempts, base_seconds=a.base_seconds,
                                             cap_seconds=a.cap_seconds),
                           breaches=lambda conn, now: sla_breaches(conn, now, limits, policy),
                           digest_over=a.digest_over)


def _reconciler(settings: Settings, db: Database, store: SqlStore, router: Erps | None, clock: Clock,
                worker: Worker, edi: EdiChannel | None, shopify: ShopifyChannel | None) -> Reconciler | None:
    """Reconciliation with the ERPs, the channels' checks plugged in; a worker job when it has an interval."""
    if router is None:
        return None
    rec = settings.reconcile
    checks: list[ChannelCheck] = []
    if edi is not None:  # the channels' own comparisons plug into the same job
        checks.append(EdiChecks(db, clock, edi.partners, settle_seconds=rec.settle_seconds))
    if shopify is not None:
        checks.append(ShopifyChecks(db, clock, settle_seconds=rec.settle_seconds))
    reconciler = Reconciler(db, store, router, clock, case_policy(settings), settle_seconds=rec.settle_seconds,
                            page=rec.page, checks=checks, interval_seconds=rec.interval_seconds)
    if rec.interval_seconds:
        worker.every(min(rec.interval_seconds, 60.0), "reconciliation", reconciler.run_job, singleton=True)
    return reconciler


def configure_telemetry(settings: Settings) -> bool:
    """Turn tracing on for this process when ``[telemetry] enabled`` (off: nothing is installed)."""
    t = settings.telemetry
    return tracing.configure(tracing.TelemetryConfig(enabled=t.enabled, endpoint=t.endpoint,
                                                     service_name=t.service_name, export_timeout=t.export_timeout))


def _all_accounts(erps: Erps | None) -> list[Account]:
    """Every active account of every ERP (what a Shopify company may be matched to)."""
    if erps is None:
        return []
    return [account for name in erps.names() for account in erps.erp(name).accounts()]


def _transport(settings: Settings, db: Database) -> SqlQueueTransport | NatsTransport:
    if settings.bus == "embedded":
        return SqlQueueTransport(db, lease_seconds=settings.worker.lease_seconds)
    if db.is_sqlite:
        raise ConfigError("bus = nats://... needs a shared store: set store = postgresql://... (several processes "
                          "cannot share one SQLite file safely)")
    n = settings.nats
    return NatsTransport(db, parse_servers(settings.bus), prefix=n.prefix, replicas=n.replicas,
                         partitions=n.partitions, lease_seconds=settings.worker.lease_seconds,
                         ack_wait=n.ack_wait_seconds,
                         max_deliver=n.max_deliver, duplicate_window=n.duplicate_window_seconds,
                         max_age_days=n.max_age_days, buffer=n.buffer, connect_timeout=n.connect_timeout,
                         publish_timeout=n.publish_timeout, source=settings.source)


def _webhooks(settings: Settings, db: Database, clock: Clock, runner: ConsumerRunner,
              worker: Worker) -> WebhookDispatcher:
    """The webhook sender: a periodic job of the worker (a thread of its own when it runs for good)."""
    wh = settings.webhooks
    retry = RetryPolicy(max_attempts=wh.max_attempts, base_seconds=wh.base_seconds, cap_seconds=wh.cap_seconds,
                        wait_cap_seconds=wh.wait_cap_seconds)
    waves = -(-wh.batch // wh.concurrency)  # a batch's requests in flight one wave after another
    sender = WebhookDispatcher(db, clock, HttpWebhookSender(timeout=wh.timeout, connect_timeout=wh.connect_timeout),
                               retry=retry, batch_size=wh.batch, concurrency=wh.concurrency,
                               lease_seconds=waves * (wh.timeout + wh.connect_timeout) + 15,
                               dead_letter_hooks=runner.dead_letter_hooks, release_leases_at_start=db.is_sqlite)
    worker.every(wh.poll_seconds, "webhook delivery", sender.send_due)
    worker.every(3600, "webhook log prune", lambda: sender.prune(wh.keep_days))
    return sender


def _router(settings: Settings, adapters: dict[str, ErpPort], db: Database, clock: Clock) -> ErpRouter:
    by_name = {e.name: e for e in settings.erp}
    guarded = {}
    for name, adapter in adapters.items():
        conf = by_name.get(name) or ErpSettings(name=name, kind="memory")
        gate = ErpGate(name, max_concurrency=conf.max_concurrency, wait_timeout=conf.wait_timeout,
                       retries=conf.retries, failure_threshold=conf.failure_threshold,
                       reset_timeout=conf.reset_timeout, clock=clock,
                       # on PostgreSQL max_concurrency holds across every process sharing the store
                       global_budget=None if db.is_sqlite else budget_for(db, name, conf.max_concurrency))
        guarded[name] = GuardedErp(adapter, gate, max_batch=conf.submit_batch)
    return ErpRouter(guarded, db, clock, routes=settings.routing.accounts, default=settings.routing.default)


def flow_policy(settings: Settings) -> FlowPolicy:
    f = settings.flows
    rules = tuple(
        ChannelRule(name=r.name, percent_off=r.percent_off, description=r.description, channels=frozenset(r.channels),
                    campaigns=frozenset(r.campaigns), skus=frozenset(r.skus), categories=frozenset(r.categories),
                    accounts=frozenset(r.accounts), valid_from=r.valid_from, valid_until=r.valid_until,
                    precedence=r.precedence, exclusive=r.exclusive)
        for r in f.channel_rules
    )
    return FlowPolicy(rules=rules, price_tolerance_percent=f.price_tolerance_percent,
                      allocation=AllocationPolicy(allow_split=f.allow_split, ship_days=f.ship_days,
                                                  backorder_days=f.backorder_days),
                      max_days_ahead=f.max_days_ahead)


def case_policy(settings: Settings) -> CasePolicy:
    c = settings.cases
    try:
        owners = {**CasePolicy().owners, **{CaseType(k): v for k, v in c.owners.items()}}
        due = {**CasePolicy().due_hours, **{CaseType(k): v for k, v in c.due_hours.items()}}
    except ValueError as exc:
        raise ConfigError(f"cases: {exc}; case types are {', '.join(t.value for t in CaseType)}") from exc
    return CasePolicy(owners=owners, due_hours=due, escalation=dict(c.escalation),
                      channel_owners=dict(c.channel_owners))


def _with_default_retry(registry: Registry, policy: RetryPolicy) -> Registry:
    """Subscriptions that kept the library default take the configured retry policy."""
    from dataclasses import replace

    out = Registry()
    for sub in registry:
        out.add(replace(sub, retry=policy) if sub.retry == RetryPolicy() else sub)
    return out


__all__ = ["Hub", "build_hub", "build_registry"]
