"""Whether a server can listen where it is told to, asked before it starts.

A server that finds its port taken only once it runs (Faust's web server after the
worker joined its group, uvicorn after the API's start-up) ends in a traceback or a
log line among others; asked first, the command says it and exits 2.
"""

from __future__ import annotations

import socket

import typer


def cannot_listen(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host``:``port`` (the port taken, an address
    this host does not have), or None if it could; the socket is closed again.

    >>> cannot_listen("192.0.2.1", 8080)  # TEST-NET-1: never this host's
    'Cannot assign requested address'
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"unknown address ({exc})"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def require_listen(host: str, port: int, what: str, options: str) -> None:
    """A command's check before it starts a server: ``typer.BadParameter`` (exit 2, one
    line naming ``options``) when :func:`cannot_listen` has a reason."""
    busy = cannot_listen(host, port)
    if busy is not None:
        raise typer.BadParameter(
            f"cannot serve {what} on {host}:{port}: {busy}", param_hint=options
        )
