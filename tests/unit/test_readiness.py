"""What ``/ready`` decides from what it saw (:func:`ordersync.runtime.health.assess`), and how a process
compares existing NATS streams with its configuration (:mod:`ordersync.messaging.streams`). No services."""

from __future__ import annotations

import datetime as dt

import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType

from ordersync.config import HealthSettings
from ordersync.messaging.heartbeat import WorkerBeat
from ordersync.messaging.streams import (
    BusState,
    DurableState,
    Peer,
    StreamMismatch,
    StreamState,
    default_replicas,
    differences,
)
from ordersync.runtime.health import Observations, assess

NOW = dt.datetime(2026, 12, 5, 20, 0, tzinfo=dt.UTC)
LIMITS = HealthSettings(heartbeat_seconds=5, worker_stale_seconds=20, forget_after_seconds=600,
                        outbox_lag_seconds=60, consumer_pending=100)
STREAMS = ("ORDERSYNC_ORDER", "ORDERSYNC_ERP", "ORDERSYNC_REPAIR")


def beat(name: str, seconds_ago: float) -> WorkerBeat:
    return WorkerBeat(id=f"host-a:{name}", host="host-a", pid=100, started_at=NOW - dt.timedelta(hours=1),
                      beat_at=NOW - dt.timedelta(seconds=seconds_ago), consumers=("orders.submit",))


def cluster(*, down: tuple[str, ...] = (), behind: tuple[str, ...] = (), leaderless: tuple[str, ...] = (),
            error: str | None = None, connected: bool = True, pending: int = 0) -> BusState:
    streams = []
    for name in STREAMS:
        if name in leaderless:
            streams.append(StreamState(name, error="no answer in time"))
            continue
        # a node killed outright: not current, and unheard of (the cluster marks it offline only much later)
        peers = tuple(Peer(n, current=n not in down + behind, offline=False, lag=3 if n in behind else 0,
                           seen_seconds_ago=12.0 if n in down else 0.4) for n in ("n1", "n2"))
        streams.append(StreamState(name, replicas=3, leader="n0", peers=peers, messages=5))
    durables = (DurableState("orders.submit", "ORDERSYNC_ORDER", pending=pending, ack_pending=2, redelivered=1),)
    return BusState(connected=connected, server="n0 (127.0.0.1:4222)", streams=tuple(streams), durables=durables,
                    error=error)


def seen(**overrides: object) -> Observations:
    values: dict[str, object] = {"now": NOW, "bus": cluster(), "workers": (beat("1", 2), beat("2", 3)),
                                 "erps": {"main": {"circuit": "closed", "last_error": None}}}
    values.update(overrides)
    return Observations(**values)  # type: ignore[arg-type]


def test_everything_up_is_ready_with_the_bus_workers_and_outbox_reported() -> None:
    verdict = assess(seen(), LIMITS)
    assert (verdict.status, verdict.http_status, verdict.reasons, verdict.warnings) == ("ready", 200, (), ())
    body = verdict.body
    assert body["bus"]["streams"]["ORDERSYNC_ORDER"] == {"replicas": 3, "leader": "n0", "messages": 5,
                                                          "peers": {"n1": "current", "n2": "current"}}
    assert body["bus"]["consumers"] == {"orders.submit": {"pending": 0, "ack_pending": 2, "redelivered": 1}}
    assert [w["id"] for w in body["workers"]["live"]] == ["host-a:1", "host-a:2"]
    assert body["workers"]["missing"] == [] and body["outbox"] == {"unpublished": 0, "lag_seconds": 0.0}


def test_one_nats_node_down_is_degraded_and_names_the_node() -> None:
    verdict = assess(seen(bus=cluster(down=("n2",))), LIMITS)
    assert verdict.status == "degraded" and verdict.http_status == 200
    assert len(verdict.warnings) == 1 and verdict.warnings[0].startswith("NATS node n2 is down")
    assert verdict.warnings[0] == "NATS node n2 is down (it holds a replica of 3 stream(s))"
    assert verdict.body["bus"]["streams"]["ORDERSYNC_ERP"]["peers"]["n2"] == "down (last seen 12 s ago)"


def test_a_replica_behind_but_heard_from_is_catching_up_and_one_said_offline_is_down() -> None:
    verdict = assess(seen(bus=cluster(behind=("n1",))), LIMITS)
    assert verdict.warnings == ("NATS node n1 is catching up on 3 stream(s)",)
    assert verdict.body["bus"]["streams"]["ORDERSYNC_ERP"]["peers"]["n1"] == "behind by 3"
    assert Peer("n1", current=False, offline=True).down and not Peer("n1", current=False, offline=False).down
    assert Peer("n1", current=False, offline=False, seen_seconds_ago=None).down  # the leader never heard from it
    assert not Peer("n1", current=True, offline=False, seen_seconds_ago=None).down


def test_streams_without_a_leader_are_not_ready_because_quorum_is_lost() -> None:
    verdict = assess(seen(bus=cluster(leaderless=STREAMS)), LIMITS)
    assert verdict.status == "not ready" and verdict.http_status == 503
    assert verdict.reasons == ("NATS: quorum lost: 3 stream(s) without a leader (ORDERSYNC_ORDER, ORDERSYNC_ERP, "
                               "ORDERSYNC_REPAIR: no answer in time)",)


def test_a_disconnected_or_refused_bus_is_not_ready() -> None:
    assert assess(seen(bus=cluster(connected=False)), LIMITS).reasons == ("NATS: not connected (reconnecting)",)
    refused = assess(seen(bus=BusState(connected=True, error="NATS streams differ ...")), LIMITS)
    assert refused.status == "not ready" and refused.reasons == ("NATS: NATS streams differ ...",)


def test_a_worker_whose_beat_is_old_is_missing_and_degrades() -> None:
    verdict = assess(seen(workers=(beat("1", 2), beat("2", 25))), LIMITS)
    assert verdict.status == "degraded"
    assert verdict.warnings == ("worker host-a:2 is missing: its last beat is 25 s old (threshold 20 s)",)
    assert [w["id"] for w in verdict.body["workers"]["missing"]] == ["host-a:2"]


def test_no_live_worker_is_not_ready_and_forgotten_ones_are_not_reported() -> None:
    verdict = assess(seen(workers=(beat("1", 30), beat("old", 5000))), LIMITS)
    assert verdict.status == "not ready"
    assert verdict.reasons == ("no live worker (the last beat, of host-a:1, is 30 s old)",)
    assert [w["id"] for w in verdict.body["workers"]["missing"]] == ["host-a:1"]
    never = assess(seen(workers=()), LIMITS)
    assert never.reasons == ("no live worker: none has run since the store was set up",)
    optional = assess(seen(workers=()), LIMITS.model_copy(update={"require_worker": False}))
    assert optional.status == "ready"


def test_a_store_that_does_not_answer_is_not_ready_and_skips_what_it_holds() -> None:
    verdict = assess(Observations(now=NOW, store_error="OperationalError: connection refused"), LIMITS)
    assert verdict.status == "not ready" and verdict.reasons == ("store: OperationalError: connection refused",)
    assert "workers" not in verdict.body and verdict.body["bus"] == {"kind": "embedded"}


def test_lag_over_its_thresholds_and_an_open_circuit_degrade() -> None:
    verdict = assess(seen(bus=cluster(pending=101), outbox_unpublished=40, outbox_lag_seconds=75.25,
                          erps={"main": {"circuit": "open", "last_error": "Unavailable: down"}}), LIMITS)
    assert verdict.status == "degraded"
    assert verdict.warnings == ("ERP main: circuit open (Unavailable: down)",
                                "consumer orders.submit: 101 messages waiting at the broker (threshold 100)",
                                "outbox: the oldest unpublished event is 75.2 s old (threshold 60 s)")


def test_health_settings_refuse_a_stale_threshold_within_one_beat() -> None:
    with pytest.raises(ValueError, match="worker_stale_seconds must exceed heartbeat_seconds"):
        HealthSettings(heartbeat_seconds=10, worker_stale_seconds=10)


# -- streams ---------------------------------------------------------------------------------------------

R3 = {"num_replicas": 3, "storage": StorageType.FILE, "max_age": 7 * 86400.0, "duplicate_window": 120.0,
      "retention": RetentionPolicy.LIMITS, "discard": DiscardPolicy.OLD, "subjects": ["ordersync.order.>"]}


def test_a_configuration_asking_for_fewer_replicas_differs_from_the_stream() -> None:
    asked = {**R3, "num_replicas": 1}
    assert differences("ORDERSYNC_ORDER", R3, asked) == [
        "ORDERSYNC_ORDER: num_replicas is 3, the configuration asks for 1"]
    assert differences("ORDERSYNC_ORDER", R3, {**R3, "max_age": 86400.0}) == [
        "ORDERSYNC_ORDER: max_age is 7 days, the configuration asks for 1 days"]
    assert differences("ORDERSYNC_ORDER", {**R3, "storage": StorageType.MEMORY}, R3) == [
        "ORDERSYNC_ORDER: storage is memory, the configuration asks for file"]


def test_replicas_left_unset_take_what_the_stream_has() -> None:
    assert differences("ORDERSYNC_ORDER", R3, {**R3, "num_replicas": None}) == []
    assert differences("ORDERSYNC_ORDER", R3, dict(R3)) == []


def test_the_refusal_names_the_streams_and_the_way_to_migrate() -> None:
    message = str(StreamMismatch(["ORDERSYNC_ORDER: num_replicas is 3, the configuration asks for 1"], "w.toml"))
    assert "ORDERSYNC_ORDER: num_replicas is 3, the configuration asks for 1" in message
    assert "(w.toml)" in message and "Nothing was changed" in message
    assert "leave [nats] replicas unset" in message and "`ordersync nats migrate`" in message


@pytest.mark.parametrize(("nodes", "replicas"), [(1, 1), (2, 1), (3, 3), (5, 3)])
def test_new_streams_get_three_copies_on_a_cluster_of_three_or_more(nodes: int, replicas: int) -> None:
    assert default_replicas(nodes) == replicas
