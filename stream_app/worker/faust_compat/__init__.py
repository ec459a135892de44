"""Every workaround for faust-streaming 0.15 (0.15.3 pinned), in one place.

If Faust is upgraded, re-read the methods named here; the pipeline drills
(kill -9, two workers with one killed, PostgreSQL outage, SIGTERM) would catch
most breaks, and each module's docstring says which failure it guards against.

- ``consumer.py``: ``BatchingConsumer`` replaces ``Consumer._drain_messages``
  and uses ``_wait_next_records``, ``perform_seek``, ``_add_gap``,
  ``_read_offset``, ``_buffered_partitions``, ``flow_active``,
  ``suspend_flow``, ``wait_first``, ``_to_message``, ``callback`` and
  ``Consumer.ack`` (on our own :class:`~stream_app.worker.feed.Record`);
  ``_ConsumerThread`` overrides ``AIOKafkaConsumerThread._create_worker_consumer``
  to set aiokafka's private ``_fetch_max_wait_ms`` (Faust hard-codes 1,500 ms).
  ``rewind_unmoved`` (records dropped while the flow is stopped: a changelog's,
  fetched after the table recovery seeked there, were lost to it) runs through the
  thread's ``call_thread`` and ``_ensure_consumer`` and reads aiokafka's private
  ``_subscription.subscription.assignment`` (``tps``, ``state_value``: a partition
  state's ``has_valid_position`` and ``position``), as aiokafka's own ``position`` does.
  ``perform_seek`` is wrapped: the feed's partitions are taken out of Faust's
  ``_get_active_partitions`` set while it runs (Faust's recovery resumes the stream
  partitions before it seeks them, and what was handed over meanwhile came twice),
  given back unless ``consumer_generation_id`` changed or ``_paused_partitions`` holds them.
  ``WorkerApp`` overrides ``App._new_transport``, ``on_start``, ``on_stop``
  (runs before Faust's ``_stop_consumer``) and ``on_shutdown``.
- ``changelog.py``: the state table's changelog sent in batches through
  ``App.maybe_start_producer`` and ``Producer.send``, the local store written as
  ``Table.data`` (Faust's per-key path through ``ProducerBuffer`` could not keep up);
  ``drop_foreign_keys`` at each assignment, as the memory store's
  ``on_recovery_completed`` drops only the keys its recovery noted in ``_key_partition``.
- ``offset_guard.py``: records skipped after a rebalance (Faust resumes
  fetching before it seeks to the committed offset).
- ``watchdog.py``: consumers that stall after a rebalance (faust #175, #532,
  #640; recovery stalls #176, #597, #651).
- ``offsets.py``: a committed offset for every input partition before the
  first worker starts (first records lost otherwise); committed and end offsets
  for the guard and the watchdog.

Also relied on, outside this folder: ``Consumer.commit`` returning False without committing while a periodic
commit is under way (the worker's shutdown commits until it returns True).
"""

from stream_app.worker.faust_compat.changelog import TableChangelog, drop_foreign_keys
from stream_app.worker.faust_compat.consumer import WorkerApp
from stream_app.worker.faust_compat.offset_guard import OffsetGuard
from stream_app.worker.faust_compat.offsets import (
    end_offsets,
    ensure_committed_offsets,
    start_offsets,
)
from stream_app.worker.faust_compat.watchdog import STALL_EXIT_CODE, StallWatchdog

__all__ = [
    "STALL_EXIT_CODE",
    "OffsetGuard",
    "StallWatchdog",
    "TableChangelog",
    "WorkerApp",
    "drop_foreign_keys",
    "end_offsets",
    "ensure_committed_offsets",
    "start_offsets",
]
