"""Prometheus metrics of this node, served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from console.web.security import operators_only
from integrations.connectors import STATES

LATENCY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    """One registry per app, so tests and several apps in one process do not share numbers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.open_sockets = Gauge("console_open_sockets", "Agent sockets open on this node",
                                  registry=self.registry)
        self.frames_sent = Counter("console_frames_sent", "Frames sent to agent sockets", registry=self.registry)
        self.pop_latency = Histogram(
            "console_pop_latency_seconds", "From a newCall received to it stored and answered (the pop follows)",
            buckets=LATENCY, registry=self.registry)
        self.push_latency = Histogram(
            "console_push_latency_seconds", "From a change stored to its frames published", buckets=LATENCY,
            registry=self.registry)
        self.queue_size = Gauge("console_queue_size", "Conversations waiting in a queue (also those ringing only "
                                "offline agents)", ["queue"], registry=self.registry)
        self.queue_ringing = Gauge("console_queue_ringing", "Conversations of a queue ringing an agent who is not "
                                   "offline", ["queue"], registry=self.registry)
        self.push_backlog = Gauge("console_push_backlog", "Changes committed on this node and waiting to be "
                                  "rendered and pushed (a burst queues here; it should drain within seconds)",
                                  registry=self.registry)
        self.mailbox_up = Gauge("console_mailbox_up", "1 when the mailbox's reader works (connected, idle or "
                                "listening), 0 when it is failing", ["mailbox", "kind"], registry=self.registry)
        self.mailbox_backlog = Gauge("console_mailbox_backlog", "Mails on the server not yet stored",
                                     ["mailbox"], registry=self.registry)
        self.mailbox_stored = Gauge("console_mailbox_stored", "Mails stored by this node since it started",
                                    ["mailbox"], registry=self.registry)
        self.mailbox_failures = Gauge("console_mailbox_failures", "Times the mailbox's reader failed since start",
                                      ["mailbox"], registry=self.registry)
        self.mailbox_last_fetch = Gauge("console_mailbox_last_fetch_timestamp_seconds",
                                        "When the mailbox was last read (Unix time)", ["mailbox"],
                                        registry=self.registry)
        self.connector_state = Gauge("console_connector_state", "1 for the state each phone or messaging connector "
                                     "is in (off, standby, connecting, connected, ready, failing), 0 for the others",
                                     ["connector", "state"], registry=self.registry)
        self.connector_events = Gauge("console_connector_events", "Events or requests a connector took since start",
                                      ["connector"], registry=self.registry)
        self.connector_failures = Gauge("console_connector_failures", "Failed connections, refused requests and "
                                        "failed calls to the provider since start", ["connector"],
                                        registry=self.registry)
        self.connector_last_event = Gauge("console_connector_last_event_timestamp_seconds",
                                          "When a connector last took an event (Unix time)", ["connector"],
                                          registry=self.registry)
        self.bus_reconnects = Gauge("console_bus_reconnects", "Times the bus reader had to reconnect",
                                    registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@operators_only
async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.wiring.metrics
    bus = request.app.state.wiring.bus
    metrics.bus_reconnects.set(getattr(bus, "reconnects", 0))
    metrics.push_backlog.set(request.app.state.wiring.notifier.backlog)
    mailboxes = request.app.state.wiring.mailboxes
    if mailboxes is not None:
        for s in mailboxes.states():
            # A node standing by while another reads the mailbox is up: nothing is wrong there.
            metrics.mailbox_up.labels(mailbox=s.name, kind=s.kind).set(0 if s.state in ("failing", "off") else 1)
            metrics.mailbox_backlog.labels(mailbox=s.name).set(s.backlog)
            metrics.mailbox_stored.labels(mailbox=s.name).set(s.stored)
            metrics.mailbox_failures.labels(mailbox=s.name).set(s.failures)
            if s.last_fetch_at is not None:
                metrics.mailbox_last_fetch.labels(mailbox=s.name).set(s.last_fetch_at.timestamp())
    for c in request.app.state.wiring.connectors():
        for state in STATES:
            metrics.connector_state.labels(connector=c.name, state=state).set(1 if c.state == state else 0)
        metrics.connector_events.labels(connector=c.name).set(c.events)
        metrics.connector_failures.labels(connector=c.name).set(c.failures)
        if c.last_event_at is not None:
            metrics.connector_last_event.labels(connector=c.name).set(c.last_event_at.timestamp())
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
