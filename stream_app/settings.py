"""The one settings object of tsguard.

Built once at start-up from ``TSGUARD_*`` environment variables (and an
optional ``.env`` file) and passed down. Nothing else in the code base reads
the environment: a test enforces that.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# a TCP port: a value outside this range failed only when something bound or dialled it
Port = Annotated[int, Field(ge=1, le=65535)]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def _default_stack_dir() -> Path:
    return Path.home() / ".cache" / "tsguard" / "stack"


class Settings(BaseSettings):
    """Every knob of tsguard, named ``TSGUARD_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="TSGUARD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- Kafka -----------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    topic_readings: str = "tsguard.readings"
    topic_anomalies: str = "tsguard.anomalies"
    topic_deadletter: str = "tsguard.deadletter"
    topic_groundtruth: str = "tsguard.groundtruth"
    topic_control: str = "tsguard.control"
    topic_feedback: str = "tsguard.feedback"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    consumer_group: str = "tsguard-workers"
    worker_id: str = "tsguard"
    worker_web_host: str = "127.0.0.1"
    worker_web_port: Port = 16066
    worker_batch_size: int = Field(default=2000, ge=1)
    # How often an idle worker finishes the write in flight and checkpoints when due.
    worker_idle_flush_s: float = Field(default=0.05, gt=0)
    # Batches being written to the database at once (scoring goes on meanwhile).
    worker_max_inflight: int = Field(default=2, ge=1, le=8)
    # Longest time the broker holds a fetch with no new data (Faust's 1,500 ms
    # stalled readings behind fetches of idle partitions).
    worker_fetch_max_wait_ms: int = Field(default=100, ge=1, le=10_000)
    worker_data_dir: Path | None = None
    # Only Faust's memory store: the worker writes its state table from batch
    # checkpoints, outside Faust's stream iteration, and Faust's RocksDB store
    # refuses such writes (an assertion on the current event), so a worker on
    # `rocksdb://` would fail every checkpoint and restart forever.
    worker_store: Literal["memory://"] = "memory://"
    # A killed worker's partitions wait this long before the group gives them to
    # anyone (a restarted worker too).
    worker_session_timeout_s: float = Field(default=10.0, ge=6.0)
    worker_checkpoint_s: float = Field(default=2.0, ge=0.0)
    # On SIGTERM: longest wait for the batch in hand to be durable, the state
    # saved and the offsets committed; the process exits (0) at most a few
    # seconds after this even if Faust's own shutdown hangs.
    worker_shutdown_timeout_s: float = Field(default=20.0, gt=0.0)
    # A worker with unread readings and no completed batch for this long exits
    # (code 75) to be restarted by its supervisor; 0 disables the watchdog.
    worker_stall_timeout_s: float = Field(default=120.0, ge=0.0)
    # Idle entities (no series whose silence is still watched, state saved) beyond
    # this many leave a worker's memory and load again from the state table on
    # their next reading; 0 keeps every entity live.
    worker_max_live_entities: int = Field(default=100_000, ge=0)
    # An entity with no silence left to watch that sent nothing for this many days (its
    # own time) is forgotten: open episodes resolved, saved state deleted; 0 never.
    worker_forget_after_days: float = Field(default=30.0, ge=0.0)
    # The state changelog's segments: Kafka compacts only closed segments, and a
    # restarted worker (memory store) replays everything that is not compacted yet,
    # so these bound that replay (Kafka's defaults, 1 GiB or 7 days, do not).
    # Applied when the changelog topic is created.
    worker_changelog_segment_bytes: int = Field(default=4 * 1024 * 1024, ge=65_536)
    worker_changelog_segment_ms: int = Field(default=3_600_000, ge=60_000)
    deadletter_max_payload_bytes: int = Field(default=16_384, ge=256)
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    # A compressed batch a consumer would unpack beyond this is skipped and said (the
    # worker dead-letters it, ``unreadable_batch``): 2 MB of gzip unpacked to 2 GB.
    kafka_max_batch_bytes: int = Field(default=128 * 1024 * 1024, ge=1_048_576)

    # --- PostgreSQL / TimescaleDB ----------------------------------------
    pg_dsn: SecretStr = SecretStr("postgresql://tsguard:tsguard@127.0.0.1:15432/tsguard")
    # The password, where the DSN has none: a generated one holds characters a URL must
    # escape ("/" made a DSN's host "tsguard", "%" made it unreadable), and here it needs none.
    pg_password: SecretStr | None = None
    pg_sslmode: SslMode | None = None
    pg_sslrootcert: Path | None = None
    pg_pool_min: int = Field(default=1, ge=0)
    pg_pool_max: int = Field(default=4, ge=1)
    pg_readonly_password: SecretStr = SecretStr("tsguard_ro")
    retention_days: int = Field(default=30, ge=1)
    # How often workers delete rows older than retention_days on plain PostgreSQL
    # (one at a time; TimescaleDB uses its own policy); 0: only `tsguard db retention`.
    retention_interval_s: float = Field(default=3600.0, ge=0.0)

    # --- detector --------------------------------------------------------
    detector_config: Path | None = None

    # --- API -------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: Port = 18080
    # HTTPS with both, plain HTTP with neither; one alone is refused (it served plain HTTP)
    api_tls_certfile: Path | None = None
    api_tls_keyfile: Path | None = Field(default=None, validate_default=True)
    api_max_body_bytes: int = Field(default=5_242_880, ge=1024)
    # Exports running at once, each on a database connection of its own for as long as it
    # streams (a million episodes: about 25 s); one more is 503. They held the routes' pool
    # connections, so four exports made every other route 503 after its 5 s wait.
    api_max_exports: int = Field(default=2, ge=1)
    # The API's Kafka requests (readings, labels' feedback) give up after this long, and
    # a label holds a database connection and its episode's row lock while it waits: with
    # Kafka down, aiokafka's own 40 s made five labels take the whole pool (every other
    # route 503, /readyz saying the database was down).
    api_kafka_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    oauth_issuer: str = "http://127.0.0.1:18080/dev"
    oauth_audience: str = "tsguard"
    oauth_jwks_url: str | None = None
    oauth_role_claim: str = "roles"
    oauth_dev_mode: bool = False
    oauth_dev_key_file: Path | None = None
    oauth_clock_skew_s: int = Field(default=30, ge=0)
    # The longest a token may live (exp - iat, and exp - now): a token whose exp was 1e300,
    # or the text "9999999999" (PyJWT reads it), was accepted for ever. `tsguard token
    # issue` mints at most this long.
    oauth_max_token_lifetime_s: int = Field(default=86_400, ge=1)
    # IdP role name -> tsguard role (viewer|operator|ingest|admin); unmapped names pass as-is.
    oauth_role_map: dict[str, str] = Field(default_factory=dict)

    # --- local stack ------------------------------------------------------
    stack_dir: Path = Field(default_factory=_default_stack_dir)
    stack_pg_port: Port = 15432
    stack_kafka_port: Port = 19092
    stack_kafka_controller_port: Port = 19093
    stack_prometheus_port: Port = 19090
    stack_alertmanager_port: Port = 19095
    stack_mosquitto_port: Port = 11883
    # where the stack's Prometheus scrapes a local `tsguard forward alertmanager` and
    # `tsguard bridge mqtt` (their --metrics-port): fixed at 19464/19465 before, so a
    # private stack (every other port moved) scraped whatever ran on the default ones
    stack_forwarder_metrics_port: Port = 19464
    stack_bridge_metrics_port: Port = 19465
    kafka_version: str = "4.1.1"

    # --- connectors -------------------------------------------------------
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Port = 11883
    # A stable id with a persistent session: the broker queues QoS 1 messages
    # for the bridge while it is away. Give each bridge replica its own id.
    mqtt_client_id: str = "tsguard-mqtt-bridge"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls: bool = False
    mqtt_tls_cafile: Path | None = None
    mqtt_reconnect_max_s: float = Field(default=30.0, gt=0)
    alertmanager_url: str = "http://127.0.0.1:19095"
    grafana_url: str = "http://127.0.0.1:3000"
    grafana_token: SecretStr | None = None
    # What Grafana's datasources point at (dashboards/datasources/*.yaml expands these).
    grafana_pg_host: str = "timescaledb:5432"
    grafana_pg_database: str = "tsguard"
    grafana_prometheus_url: str = "http://prometheus:9090"
    # jsonData.timescaledb of the PostgreSQL datasource: $__timeGroup becomes
    # time_bucket() (TimescaleDB) or floor(extract(epoch ...)) (plain PostgreSQL).
    grafana_timescaledb: bool = False

    log_level: str = "INFO"

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security options for every aiokafka client (producer, consumer, admin).

        Every consumer of the process also unpacks compressed batches within
        ``kafka_max_batch_bytes`` from here on, and reads one it cannot unpack as a
        stand-in record (:mod:`stream_app.kafka_batches`).
        """
        from stream_app import kafka_batches

        kafka_batches.install(self.kafka_max_batch_bytes)
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
                certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
                keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
            )
        if self.kafka_security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            kwargs["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return kwargs

    @field_validator("*", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty optional path is unset: compose passes a variable through as
        ``${NAME:-}``, empty when the user set none, and pydantic read "" as ``Path(".")``
        (an API given "." as its certificate and key failed to start)."""
        name = info.field_name
        if value == "" and name is not None and cls.model_fields[name].annotation == Path | None:
            return None
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _flag_is_true_or_false(cls, value: Any, info: ValidationInfo) -> Any:
        """A flag is written ``true`` or ``false``, nothing else: pydantic also read yes/no,
        1/0, on/off in any case, and compose picks Grafana's datasource file by the very
        text of TSGUARD_GRAFANA_TIMESCALEDB (with ``yes`` a file that does not exist)."""
        name = info.field_name
        if name is None or cls.model_fields[name].annotation is not bool:
            return value
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError("must be exactly true or false")

    @field_validator("api_tls_keyfile")
    @classmethod
    def _tls_pair(cls, keyfile: Path | None, info: ValidationInfo) -> Path | None:
        if "api_tls_certfile" in info.data and (info.data["api_tls_certfile"] is None) != (
            keyfile is None
        ):
            raise ValueError(
                "TSGUARD_API_TLS_CERTFILE and TSGUARD_API_TLS_KEYFILE go together (HTTPS);"
                " set both or neither"
            )
        return keyfile

    @field_validator("pg_dsn")
    @classmethod
    def _readable_dsn(cls, dsn: SecretStr) -> SecretStr:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(dsn.get_secret_value())
        except ProgrammingError:
            # libpq's message may quote the password: not echoed
            raise ValueError(
                "not a PostgreSQL connection string or URL (a password with % / @ : or #"
                " must be percent-encoded in a URL; or leave it out and set TSGUARD_PG_PASSWORD)"
            ) from None
        return dsn

    def pg_conninfo(self) -> str:
        """The PostgreSQL DSN with the password (where the DSN has none) and the TLS
        settings folded in."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        extra: dict[str, str] = {}
        dsn = self.pg_dsn.get_secret_value()
        if self.pg_password is not None and not conninfo_to_dict(dsn).get("password"):
            extra["password"] = self.pg_password.get_secret_value()
        if self.pg_sslmode:
            extra["sslmode"] = self.pg_sslmode
        if self.pg_sslrootcert:
            extra["sslrootcert"] = str(self.pg_sslrootcert)
        return make_conninfo(dsn, **extra)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)


# ``TSGUARD_*`` names read elsewhere than here: docker compose's published addresses and
# the API's certificate folder, and the wheel's build (setup.py)
NOT_SETTINGS = frozenset(
    {
        "TSGUARD_PUBLISH_ADDRESS",
        "TSGUARD_MONITORING_PUBLISH_ADDRESS",
        "TSGUARD_API_TLS_DIR",
        "TSGUARD_PURE_PYTHON",
    }
)


def unknown_variables() -> list[str]:
    """One line for each ``TSGUARD_*`` environment variable that is no setting, with the
    nearest one. pydantic-settings ignores such a name, so a typo
    (``TSGUARD_WORKER_BATCHSIZE``) left the default in force without a word.
    """
    known = {f"TSGUARD_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    lines = []
    for name in sorted(os.environ):
        if name.upper().startswith("TSGUARD_") and name.upper() not in known:
            near = difflib.get_close_matches(name.upper(), sorted(known), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            lines.append(f"tsguard: {name} is not a setting{hint}; it is ignored")
    return lines
