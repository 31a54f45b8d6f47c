"""Prometheus metrics of this node, served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from console.web.security import operators_only

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
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
