"""Prometheus metrics of the API and the ASGI middleware that records every request.

Each app has its own registry (several apps can live in one test process). With several
uvicorn workers, set PROMETHEUS_MULTIPROC_DIR (`amhs serve --workers N` does) and /metrics
aggregates every worker's files.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """Request counts and latency, the loaded model version, reloads, the prediction log and the
    webhook notifications."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("amhs_api_requests_total", "HTTP requests by endpoint and status",
                                ["endpoint", "method", "status"], registry=reg)
        self.latency = Histogram("amhs_api_request_duration_seconds",
                                 "time from request to the end of the answer, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=reg)
        self.model = Gauge("amhs_model_loaded", "1 for the model version being served",
                           ["name", "version", "alias"], registry=reg, multiprocess_mode="liveall")
        self.reloads = Counter("amhs_model_reloads_total",
                               "champion reloads by result (success, failure, unchanged)",
                               ["result"], registry=reg)
        self.predicted_lines = Counter("amhs_predicted_lines_total", "lines predicted",
                                       registry=reg)
        self.log_dropped = Counter("amhs_prediction_log_dropped_total",
                                   "predictions not logged because the writer fell behind",
                                   registry=reg)
        self.unlogged = Counter("amhs_predictions_unlogged_total",
                                "lines answered but neither logged nor notified: the request "
                                "carried no valid X-AMHS-Log-Token (AMHS_LOG_TOKEN is set)",
                                registry=reg)
        self.untrained_lines = Counter(
            "amhs_untrained_lines_total", "lines of requests that the served version was not "
            "trained on (answered with a warning, or refused with AMHS_STRICT_LINES)",
            registry=reg)
        self.notifications = Counter(
            "amhs_notifications_total", "webhook messages (one per URL) by kind and result: sent, "
            "failed after every try, dropped because the queue was full; untracked: answers whose "
            "CRITICAL episodes could not be followed", ["kind", "result"],
            registry=reg)

    def notified(self, kind: str, result: str) -> None:
        """Count one webhook message's result (called from the sender's thread)."""
        self.notifications.labels(kind, result).inc()

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def model_swapped(self, old: dict | None, new: dict) -> None:
        """The version gauge follows the served model."""
        if old is not None:
            try:
                self.model.remove(old["name"], old["version"], old["alias"])
            except KeyError:
                pass
        self.model.labels(new["name"], new["version"], new["alias"]).set(1)

    def exposition(self) -> bytes:
        """The Prometheus text format, every worker's figures when in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: status and latency of every HTTP request, by route template."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message) -> None:
            """Pass the message on, noting the status."""
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(endpoint, scope["method"], status, time.perf_counter() - started)
