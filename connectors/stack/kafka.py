"""Apache Kafka, single KRaft node (broker + controller), from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from connectors.stack import process
from connectors.stack.process import Report, StackError
from connectors.stack.service import Service

POM = Path(__file__).with_name("kafka-pom.xml")
#: Large enough for a 5 MB poison message to reach the dead-letter path in tests.
MAX_MESSAGE_BYTES = 6 * 1024 * 1024


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding.

    Same shape as ``StorageTool random-uuid`` without paying a JVM start.

    >>> len(random_cluster_id())
    22
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids ids that look like a flag
            return text


async def _broker_answers(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    timeout_ms = int(timeout_s * 1000)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


def broker_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the broker serves metadata with at least one live broker.

    Runs its own event loop: call it from a thread, never from inside a loop.
    """
    return asyncio.run(_broker_answers(bootstrap, timeout_s))


class Kafka(Service):
    name = "kafka"
    start_deadline_s = 120.0
    stop_deadline_s = 45.0

    @property
    def port(self) -> int:
        return self.settings.stack_kafka_port

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def check_prerequisites(self) -> None:
        process.require_program("java", "apt-get install -y openjdk-17-jre-headless")
        if not self._libs_ready():
            process.require_program("mvn", "apt-get install -y maven")

    def probe(self) -> bool:
        return process.tcp_open("127.0.0.1", self.port) and broker_answers(f"127.0.0.1:{self.port}")

    def command(self) -> list[str]:
        return [
            self._java(),
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka=info",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.config_file),
        ]

    def prepare(self, report: Report) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if not self._libs_ready():
            self._resolve_jars(report)
        self.config_file.write_text(self.server_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

    def server_properties(self) -> str:
        """The broker configuration: one node, loopback only, internal topics unreplicated."""
        host, port, ctrl = "127.0.0.1", self.port, self.settings.stack_kafka_controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{ctrl}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            # Topics are created explicitly with their partition count (Faust needs that);
            # a typo in a topic name must fail loudly instead of creating a 1-partition topic.
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(MAX_MESSAGE_BYTES),
            "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        lines = ["# Generated by `tsguard stack up`: edits are overwritten."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    # --- helpers ----------------------------------------------------------

    def _java(self) -> str:
        return process.require_program("java", "apt-get install -y openjdk-17-jre-headless")

    def _libs_ready(self) -> bool:
        marker = self.libs / ".kafka-version"
        return marker.exists() and marker.read_text().strip() == self.settings.kafka_version

    def _resolve_jars(self, report: Report) -> None:
        """Maven copies the broker's runtime jars into ``libs`` (atomically, via a temp dir)."""
        mvn = process.require_program("mvn", "apt-get install -y maven")
        version = self.settings.kafka_version
        report(f"kafka: resolving Kafka {version} jars with Maven (first run only)")
        work = self.home / "maven"
        staging = self.home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(POM, work / "pom.xml")  # Maven may write target/ next to the pom
        log = self.paths.logs / "maven.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(work / "pom.xml"),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        # Maven inherits the caller's environment: proxies, JAVA_HOME and MAVEN_OPTS apply.
        with log.open("w") as out:
            done = subprocess.run(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            raise StackError(
                f"kafka: Maven could not resolve the jars; see {log}\n{process.log_tail(log)}"
            )
        (staging / ".kafka-version").write_text(version + "\n")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)

    def _format_storage(self) -> None:
        """Format the KRaft metadata log once (``kafka.tools.StorageTool``)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        argv = [
            self._java(),
            "-Xmx256m",
            "-cp",
            f"{self.libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            random_cluster_id(),
            "-c",
            str(self.config_file),
        ]
        done = subprocess.run(
            argv, env=process.child_env(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise StackError(f"kafka: formatting the storage failed:\n{done.stdout}{done.stderr}")
