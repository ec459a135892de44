"""Bring the local stack up, down, or report on it: the Python API behind ``tsguard stack``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from connectors.stack import process
from connectors.stack.alertmanager import Alertmanager
from connectors.stack.kafka import Kafka
from connectors.stack.mosquitto import Mosquitto
from connectors.stack.postgres import Postgres
from connectors.stack.process import MissingPrerequisite, Report, StackError
from connectors.stack.prometheus import Prometheus
from connectors.stack.service import Service, ServiceStatus, StackPaths
from stream_app.settings import Settings

log = logging.getLogger("tsguard.stack")
T = TypeVar("T")

SERVICES: dict[str, type[Service]] = {
    cls.name: cls for cls in (Kafka, Postgres, Prometheus, Alertmanager, Mosquitto)
}
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)


def select(settings: Settings, names: Iterable[str] | None = None) -> list[Service]:
    """The services named (all when None), in the stack's order."""
    wanted = list(SERVICE_NAMES) if names is None else [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in SERVICES]
    if unknown:
        raise StackError(f"unknown service {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    return [SERVICES[n](settings) for n in SERVICE_NAMES if n in wanted]


def ensure_up(
    settings: Settings,
    services: Sequence[str] | None = None,
    report: Report = log.info,
) -> list[ServiceStatus]:
    """Start the services that are not running and wait until all are healthy.

    Idempotent: running, healthy services are left alone (Prometheus reloads a
    changed configuration). Missing Debian packages of Prometheus, Alertmanager
    and Mosquitto are installed first; other missing programs raise
    :class:`MissingPrerequisite`. Services start in parallel (Kafka is the slow one).
    """
    chosen = select(settings, services)
    paths = StackPaths(settings.stack_dir.expanduser().resolve())
    with process.file_lock(paths.lock):
        packages = sorted({p for service in chosen for p in service.needs_packages()})
        process.install_debian_packages(packages, report)
        missing: list[str] = []
        for service in chosen:
            try:
                service.check_prerequisites()
            except MissingPrerequisite as exc:
                missing.append(str(exc))
        if missing:
            raise MissingPrerequisite("\n".join(missing))
        return _in_parallel(chosen, lambda service: service.ensure(report))


def stop(
    settings: Settings,
    services: Sequence[str] | None = None,
    report: Report = log.info,
) -> list[str]:
    """Stop the services this stack started (by pid file); names of those stopped."""
    chosen = select(settings, services)
    paths = StackPaths(settings.stack_dir.expanduser().resolve())
    with process.file_lock(paths.lock):
        stopped = _in_parallel(chosen, lambda service: service.stop(report))
    return [service.name for service, done in zip(chosen, stopped, strict=True) if done]


def status(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Pid, port and health of each service, probed in parallel."""
    chosen = select(settings, services)
    return _in_parallel(chosen, lambda service: service.status())


def _in_parallel(services: list[Service], action: Callable[[Service], T]) -> list[T]:
    """Run ``action`` on every service at once; all errors are reported together."""
    if not services:
        return []
    with ThreadPoolExecutor(max_workers=len(services), thread_name_prefix="stack") as pool:
        futures = [pool.submit(action, service) for service in services]
        results: list[T] = []
        errors: list[str] = []
        for future in futures:
            try:
                results.append(future.result())
            except StackError as exc:
                errors.append(str(exc))
    if errors:
        raise StackError("\n".join(errors))
    return results
