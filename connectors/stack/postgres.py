"""PostgreSQL 15 from Debian's binaries, in a private data dir on its own port.

``initdb`` refuses to run as root, so as root every PostgreSQL program runs as
the ``postgres`` user, which owns the service's folder. Local (socket)
connections are trusted so the stack can create the tsguard role; TCP
connections need the role's password, as in production.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from connectors.stack import process
from connectors.stack.process import MissingPrerequisite, Report, StackError
from connectors.stack.service import Service

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


class Postgres(Service):
    name = "postgres"
    start_deadline_s = 60.0
    stop_deadline_s = 30.0

    @property
    def port(self) -> int:
        return self.settings.stack_pg_port

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home

    def check_prerequisites(self) -> None:
        for program in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / program).exists():
                raise MissingPrerequisite(
                    f"PostgreSQL 15 {program} not found in {PG_BIN}: "
                    "apt-get install -y postgresql-15"
                )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(PG_USER)
            except KeyError:
                raise MissingPrerequisite(
                    f"user {PG_USER} not found (initdb cannot run as root): "
                    "apt-get install -y postgresql-15"
                ) from None

    # --- the three things every service does ------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError("postgres is started by pg_ctl")  # see start()

    def pid(self) -> int | None:
        """The postmaster pid, from the ``postmaster.pid`` that PostgreSQL itself writes."""
        pid = process.read_pid(self.data_dir / "postmaster.pid")
        if pid is None or not process.pid_alive(pid):
            return None
        return pid if str(self.data_dir) in process.cmdline(pid) else None

    def probe(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.tcp_conninfo(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def prepare(self, report: Report) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._chown(self.home)
        if os.geteuid() == 0:
            process.make_traversable(self.home)
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._chown(self.log_file)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(report)

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {shlex.quote(str(self.socket_dir))}",
                "-c listen_addresses=127.0.0.1",
                # Sized for an ingest workload, as timescaledb-tune sizes the
                # compose image: with the default 128 MB the backends wrote
                # dirty pages out themselves once observations outgrew it, and
                # the 1 GB WAL limit forced a checkpoint about every minute.
                "-c shared_buffers=512MB",
                "-c max_wal_size=4GB",
            ]
        )
        deadline = str(int(self.start_deadline_s))
        self._run_pg(
            [
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                deadline,
                "start",
            ],
            what="pg_ctl start",
        )
        self._create_role_and_database()

    def stop_process(self) -> None:
        self._run_pg(
            [
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(self.stop_deadline_s)),
                "stop",
            ],
            what="pg_ctl stop",
        )

    def reconfigure(self, report: Report) -> None:
        self._create_role_and_database()

    # --- helpers ----------------------------------------------------------

    def dsn_parts(self) -> dict[str, Any]:
        """User, password and database named by ``TSGUARD_PG_DSN`` (the password also by
        ``TSGUARD_PG_PASSWORD``; tsguard by default)."""
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(self.settings.pg_conninfo())
        return {
            "user": str(parts.get("user") or "tsguard"),
            "password": str(parts.get("password") or "tsguard"),
            "dbname": str(parts.get("dbname") or "tsguard"),
        }

    def tcp_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host="127.0.0.1", port=self.port, **self.dsn_parts())

    def _superuser_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=str(self.socket_dir), port=self.port, user=PG_USER, dbname="postgres"
        )

    def _create_role_and_database(self) -> None:
        """The application role (with the DSN's password) and its database, idempotently."""
        import psycopg
        from psycopg import sql

        parts = self.dsn_parts()
        role, database = sql.Identifier(parts["user"]), sql.Identifier(parts["dbname"])
        password = sql.Literal(parts["password"])
        with psycopg.connect(self._superuser_conninfo(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", [parts["user"]]
            ).fetchone()
            verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
            # CREATEROLE so `tsguard db migrate` can create Grafana's read-only role.
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN CREATEROLE PASSWORD {}").format(verb, role, password)
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [parts["dbname"]]
            ).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))

    def _initdb(self, report: Report) -> None:
        """``initdb`` into a temporary folder, renamed when complete (no half-made data dir)."""
        staging = self.home / "data.partial"
        shutil.rmtree(staging, ignore_errors=True)
        report(f"postgres: initdb {self.data_dir}")
        self._run_pg(
            [
                "initdb",
                "-D",
                str(staging),
                "-U",
                PG_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            what="initdb",
        )
        staging.rename(self.data_dir)

    def _run_pg(self, argv: list[str], what: str) -> None:
        """Run a PostgreSQL program, as ``postgres`` when we are root."""
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            kwargs = {"user": PG_USER, "group": PG_USER, "extra_groups": []}
        done = subprocess.run(
            [str(PG_BIN / argv[0]), *argv[1:]],
            cwd=self.home,
            env=process.child_env({"HOME": str(self.home)}),
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise StackError(
                f"postgres: {what} failed ({done.returncode}): {output}\n"
                f"see {self.log_file}\n{process.log_tail(self.log_file)}"
            )

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, pwd.getpwnam(PG_USER).pw_uid, grp.getgrnam(PG_USER).gr_gid)
