"""Detached processes, pid files, prerequisites and health probes of the local stack.

Services are spawned with ``os.posix_spawn`` in a new session rather than
``subprocess.Popen``: the CLI exits right after a start, and a ``Popen`` object
of a child that outlives it would raise a ``ResourceWarning`` in any
long-lived caller (pytest runs with warnings as errors).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

Report = Callable[[str], None]

#: ``PATH`` given to every child: the Debian binaries live in both bin and sbin.
CHILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StackError(RuntimeError):
    """A service of the local stack could not be started, checked or stopped."""


class MissingPrerequisite(StackError):
    """A program the stack needs is absent; the message says how to get it."""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small explicit environment for a child process."""
    env = {
        "PATH": CHILD_PATH,
        "HOME": pwd.getpwuid(os.getuid()).pw_dir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    if extra:
        env.update(extra)
    return env


def find_program(name: str) -> str | None:
    """Absolute path of ``name`` on the children's ``PATH``, or None."""
    return shutil.which(name, path=CHILD_PATH)


def require_program(name: str, how_to_get: str) -> str:
    """Absolute path of ``name``, or a one-line :class:`MissingPrerequisite`."""
    found = find_program(name)
    if found is None:
        raise MissingPrerequisite(f"{name} not found: {how_to_get}")
    return found


def install_debian_packages(packages: Sequence[str], report: Report) -> None:
    """``apt-get update`` once, then ``apt-get install -y`` of the missing packages."""
    if not packages:
        return
    command = "apt-get install -y " + " ".join(packages)
    if os.geteuid() != 0:
        raise MissingPrerequisite(f"missing Debian packages: run as root `{command}`")
    report(f"installing missing Debian packages: {command}")
    env = child_env({"DEBIAN_FRONTEND": "noninteractive"})
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise StackError(f"`{' '.join(argv)}` failed ({done.returncode}):\n{tail}")


# --- processes -------------------------------------------------------------


def spawn_detached(argv: Sequence[str], log_file: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions, setsid=True)


def _reap(pid: int) -> bool:
    """Collect ``pid`` if it is our own exited child; True when it was reaped."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as dead)."""
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces, or "" when unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def read_pid(pid_file: Path) -> int | None:
    """The pid stored in the first line of ``pid_file``, or None."""
    try:
        first = pid_file.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")


def terminate(pid: int, deadline_s: float) -> None:
    """SIGTERM the process group of ``pid``, SIGKILL it if still alive at the deadline."""
    for sig, wait_s in ((signal.SIGTERM, deadline_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(pid, sig)
            except PermissionError:
                os.kill(pid, sig)
        if wait_until(lambda: not pid_alive(pid), wait_s):
            return
    raise StackError(f"process {pid} survived SIGKILL")


# --- waiting and probing ---------------------------------------------------


def wait_until(
    condition: Callable[[], bool],
    deadline_s: float,
    interval_s: float = 0.2,
    give_up: Callable[[], bool] | None = None,
) -> bool:
    """Poll ``condition`` until it holds (True) or the deadline passes (False).

    ``give_up`` is checked between polls to stop early, e.g. when the process died.
    """
    end = time.monotonic() + deadline_s
    while True:
        if condition():
            return True
        if time.monotonic() >= end or (give_up is not None and give_up()):
            return False
        time.sleep(interval_s)


def tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout_s: float = 2.0, method: str = "GET") -> bool:
    """True when ``url`` answers with a 2xx status."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(log_file: Path, lines: int = 15) -> str:
    """The last lines of a log, indented, for error messages."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two ``stack up`` never race each other."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_traversable(path: Path) -> None:
    """Give "others" search permission on ``path`` and each of its parents.

    PostgreSQL runs as ``postgres`` and must reach its data dir below e.g. /root.
    Only the execute (search) bit is added: nothing becomes listable.
    """
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)
