"""Prometheus gauges of the findings, read from the database at scrape time: the API replicas
answer for the watcher, wherever it runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.continuous.queries import count_findings, violating_counts
from app.db import Database

log = logging.getLogger("provenant.continuous")


class FindingsCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        violating = GaugeMetricFamily(
            "provenant_continuous_violating_workloads",
            "Running workloads with a violating finding, by namespace and failing policy",
            labels=["namespace", "policy"],
        )
        findings = GaugeMetricFamily(
            "provenant_continuous_findings", "Findings by status", labels=["status"]
        )
        try:
            with self.db.session() as session:
                for namespace, policy, count in violating_counts(session):
                    violating.add_metric([namespace, policy], count)
                for status, count in sorted(count_findings(session).items()):
                    findings.add_metric([status], count)
        except Exception as exc:  # a scrape must not fail because the database blinked
            log.warning("findings metrics unavailable: %s", exc)
        yield violating
        yield findings
