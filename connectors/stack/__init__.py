"""The local stack: Kafka (KRaft), PostgreSQL, Prometheus, Alertmanager and Mosquitto.

Real services on loopback with private data under ``settings.stack_dir`` and
non-default ports, for ``make demo`` and the integration tests::

    from connectors.stack import ensure_up, stop
    ensure_up(settings, services=["kafka", "postgres"])
    stop(settings)
"""

from connectors.stack.lifecycle import SERVICE_NAMES, ensure_up, status, stop
from connectors.stack.process import MissingPrerequisite, StackError
from connectors.stack.service import ServiceStatus

__all__ = [
    "SERVICE_NAMES",
    "MissingPrerequisite",
    "ServiceStatus",
    "StackError",
    "ensure_up",
    "status",
    "stop",
]
