"""What every service of the local stack shares: folders, pid file, start, stop, health."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from connectors.stack import process
from connectors.stack.process import MissingPrerequisite, Report, StackError
from stream_app.settings import Settings


@dataclasses.dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps its data, logs and pid files."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def lock(self) -> Path:
        return self.root / "stack.lock"

    def home(self, service: str) -> Path:
        """The private folder of one service (configuration and data)."""
        return self.root / service


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """One line of ``tsguard stack status``."""

    name: str
    pid: int | None
    port: int
    healthy: bool
    log: Path
    started: bool = False  # True when this call started it


class Service(ABC):
    """A local service started detached, recorded in a pid file, checked by a probe."""

    name: ClassVar[str]
    #: Debian packages installed by ``stack up`` when :meth:`needs_packages` says so.
    #: The program the service runs, when a Debian package provides it.
    binary: ClassVar[str | None] = None
    debian_packages: ClassVar[tuple[str, ...]] = ()
    start_deadline_s: ClassVar[float] = 30.0
    stop_deadline_s: ClassVar[float] = 20.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StackPaths(settings.stack_dir.expanduser().resolve())
        self.home = self.paths.home(self.name)

    # --- to implement ---------------------------------------------------

    @property
    @abstractmethod
    def port(self) -> int:
        """The main port the service listens on (127.0.0.1)."""

    @abstractmethod
    def probe(self) -> bool:
        """One quick health check: True when the service answers."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv of the detached process (absolute paths)."""

    def needs_packages(self) -> list[str]:
        """Debian packages to install because :attr:`binary` is missing."""
        if self.binary is None or Path(self.binary).exists():
            return []
        return list(self.debian_packages)

    def check_prerequisites(self) -> None:
        """Raise :class:`MissingPrerequisite` naming what is missing and how to get it."""
        if self.needs_packages():
            raise MissingPrerequisite(
                f"{self.binary} not found: apt-get install -y {' '.join(self.debian_packages)}"
            )

    def prepare(self, report: Report) -> None:
        """Write configuration and initialise data; runs before every start."""
        self.home.mkdir(parents=True, exist_ok=True)

    def reconfigure(self, report: Report) -> None:
        """Apply configuration changes to an already running, healthy service."""
        return  # most services read their configuration only when they start

    # --- shared behaviour -------------------------------------------------

    @property
    def log_file(self) -> Path:
        return self.paths.logs / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.paths.run / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid of our running process, or None (stale pid files do not count).

        A recycled pid is not ours: the process's command line must name our folder.
        """
        pid = process.read_pid(self.pid_file)
        if pid is None or not process.pid_alive(pid):
            return None
        return pid if str(self.home) in process.cmdline(pid) else None

    def status(self, started: bool = False) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            name=self.name,
            pid=pid,
            port=self.port,
            healthy=pid is not None and self.probe(),
            log=self.log_file,
            started=started,
        )

    def start(self) -> None:
        """Spawn the process detached and record its pid."""
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        pid = process.spawn_detached(self.command(), self.log_file, process.child_env())
        process.write_pid(self.pid_file, pid)

    def stop_process(self) -> None:
        pid = self.pid()
        if pid is not None:
            process.terminate(pid, self.stop_deadline_s)

    def ensure(self, report: Report) -> ServiceStatus:
        """Start the service unless it already runs; wait for it to be healthy."""
        if self.pid() is not None:
            if self.wait_healthy():
                self.reconfigure(report)
                return self.status()
            raise StackError(
                f"{self.name} runs (pid {self.pid()}) but is not healthy on port {self.port}; "
                f"see {self.log_file}\n{process.log_tail(self.log_file)}"
            )
        if process.tcp_open("127.0.0.1", self.port):
            raise StackError(
                f"{self.name}: port 127.0.0.1:{self.port} is taken by a process this stack "
                f"did not start; stop it or choose another port (TSGUARD_STACK_*_PORT)"
            )
        self.prepare(report)
        self.start()
        if not self.wait_healthy():
            state = (
                "exited" if self._died() else f"is not healthy after {self.start_deadline_s:g} s"
            )
            raise StackError(
                f"{self.name} {state} during start-up; see {self.log_file}\n"
                f"{process.log_tail(self.log_file)}"
            )
        report(f"{self.name}: started (pid {self.pid()}, port {self.port})")
        return self.status(started=True)

    def wait_healthy(self) -> bool:
        return process.wait_until(
            self.probe,
            self.start_deadline_s,
            interval_s=0.25,
            give_up=self._died,
        )

    def _died(self) -> bool:
        """The spawned process is gone (liveness only: right after the spawn its
        command line can still be empty, which would fail :meth:`pid`'s check)."""
        pid = process.read_pid(self.pid_file)
        return pid is None or not process.pid_alive(pid)

    def stop(self, report: Report) -> bool:
        """Stop our process if it runs; True when something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self.stop_process()
        self.pid_file.unlink(missing_ok=True)
        report(f"{self.name}: stopped (pid {pid})")
        return True


class HttpService(Service):
    """A service with a YAML config file in its home and a ``/-/ready`` endpoint."""

    config_name: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.home / self.config_name

    def probe(self) -> bool:
        return process.http_ok(f"{self.url}/-/ready")
