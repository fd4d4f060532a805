"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
the holder renews ``renewTime`` every ``renew`` seconds; a candidate takes the Lease over once
``renewTime + leaseDurationSeconds`` has passed. Every write is a replace carrying the
resourceVersion read, so two candidates cannot both win (the loser gets 409 Conflict)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from lightkube import ApiError, Client

from app.continuous.kube import Lease

log = logging.getLogger("provenant.continuous")


def _micro(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class LeaderElector:
    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: float = 15.0,
        renew: float = 5.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew = renew
        self.leading = threading.Event()

    def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True while this candidate holds it."""
        now = datetime.now(UTC)
        try:
            lease = self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            return self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        duration = timedelta(seconds=float(spec.get("leaseDurationSeconds") or self.duration))
        if holder != self.identity and holder and renewed and now < renewed + duration:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            transitions += 1
            spec["acquireTime"] = _micro(now)
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.duration),
            renewTime=_micro(now),
            leaseTransitions=transitions,
        )
        lease["spec"] = spec
        try:
            self.client.replace(lease, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code == 409:  # another candidate wrote first
                return False
            raise
        return True

    def _create(self, now: datetime) -> bool:
        lease: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": 0,
            },
        }
        try:
            self.client.create(Lease(lease), namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Wait until this candidate leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if self._attempt():
                self.leading.set()
                log.info(
                    "leader election: %s now holds lease %s/%s",
                    self.identity,
                    self.namespace,
                    self.name,
                )
                return True
            stop.wait(self.renew)
        return False

    def hold(self, stop: threading.Event) -> None:
        """Renew until ``stop`` or until the Lease cannot be renewed within its duration."""
        deadline = datetime.now(UTC) + timedelta(seconds=self.duration)
        while not stop.wait(self.renew):
            held = self._attempt()
            if held:
                deadline = datetime.now(UTC) + timedelta(seconds=self.duration)
            elif held is False or datetime.now(UTC) >= deadline:
                break  # taken over, or unreachable for longer than the Lease lasts
        self.leading.clear()
        log.info("leader election: %s no longer leads", self.identity)

    def release(self) -> None:
        """Give the Lease up on shutdown, so another replica takes over at once."""
        try:
            lease = self.client.get(Lease, self.name, namespace=self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = None
                spec["renewTime"] = None
                lease["spec"] = spec
                self.client.replace(lease, namespace=self.namespace)
        except Exception as exc:  # shutting down: the Lease expires anyway
            log.info("leader election: release failed: %s", exc)

    def _attempt(self) -> bool | None:
        """None when the apiserver could not be asked."""
        try:
            return self.try_acquire()
        except Exception as exc:
            log.warning("leader election: %s", exc)
            return None
