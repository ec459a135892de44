"""SQL for the anomaly endpoints: one filter builder shared by list and export.

Every value is a bound parameter; only fixed fragments chosen by which filters
are present are composed, with :mod:`psycopg.sql`, never by string formatting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import sql

from stream_app.api.params import like_prefix
from stream_app.storage.tables import ANOMALY_COLUMNS

Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "resolved"]
Label = Literal["true_positive", "false_positive"]

COLUMNS = ANOMALY_COLUMNS
_SELECT = sql.SQL("SELECT {cols} FROM anomalies").format(
    cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
)
_RETURNING = sql.SQL(" RETURNING {cols}").format(
    cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
)
_ORDER = sql.SQL(" ORDER BY started_at DESC, id DESC")


@dataclass(frozen=True, slots=True)
class AnomalyFilter:
    """The filters of ``GET /v1/anomalies`` and its export (all optional)."""

    start: datetime | None = None
    end: datetime | None = None
    entity_prefix: str | None = None
    metric: str | None = None
    severity: tuple[str, ...] = ()
    status: str | None = None
    label: str | None = None

    def where(self) -> tuple[sql.Composable, dict[str, Any]]:
        """``WHERE ...`` for episodes active in ``[start, end)`` and matching the rest."""
        conds: list[sql.Composable] = [sql.SQL("TRUE")]
        params: dict[str, Any] = {}
        if self.end is not None:
            conds.append(sql.SQL("started_at < %(end)s"))
            params["end"] = self.end
        if self.start is not None:
            conds.append(sql.SQL("COALESCE(ended_at, last_ts) >= %(start)s"))
            params["start"] = self.start
        if self.entity_prefix:
            conds.append(sql.SQL("entity LIKE %(prefix)s ESCAPE '\\'"))
            params["prefix"] = like_prefix(self.entity_prefix)
        if self.metric:
            conds.append(sql.SQL("metric = %(metric)s"))
            params["metric"] = self.metric
        if self.severity:
            conds.append(sql.SQL("severity = ANY(%(severity)s)"))
            params["severity"] = list(self.severity)
        if self.status:
            conds.append(sql.SQL("status = %(status)s"))
            params["status"] = self.status
        if self.label == "none":
            conds.append(sql.SQL("label IS NULL"))
        elif self.label:
            conds.append(sql.SQL("label = %(label)s"))
            params["label"] = self.label
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds), params


def page_query(
    flt: AnomalyFilter, after: tuple[datetime, str] | None, limit: int
) -> tuple[sql.Composable, dict[str, Any]]:
    """One page in (started_at, id) descending order, fetching ``limit + 1`` rows so
    the caller knows whether another page exists."""
    where, params = flt.where()
    if after is not None:
        where = where + sql.SQL(" AND (started_at, id) < (%(after_ts)s, %(after_id)s)")
        params.update(after_ts=after[0], after_id=after[1])
    params["limit"] = limit + 1
    return _SELECT + where + _ORDER + sql.SQL(" LIMIT %(limit)s"), params


def export_query(flt: AnomalyFilter) -> tuple[sql.Composable, dict[str, Any]]:
    where, params = flt.where()
    return _SELECT + where + _ORDER, params


def one_query() -> sql.Composable:
    return _SELECT + sql.SQL(" WHERE id = %s")


# only the first acknowledgement is stored: a second one (a retry, another operator) wrote
# over who acknowledged, when, and the comment (an empty body erased it), with no trace left
ACK_SQL = (
    sql.SQL(
        "UPDATE anomalies SET acknowledged_at = now(), acknowledged_by = %s, ack_comment = %s"
        " WHERE id = %s AND acknowledged_at IS NULL"
    )
    + _RETURNING
)
# the episode before a new label is set (the row locked until the transaction ends, so two
# concurrent labels are judged one after the other)
LABEL_BEFORE_SQL = _SELECT + sql.SQL(" WHERE id = %s FOR UPDATE")

LABEL_SQL = (
    sql.SQL(
        "UPDATE anomalies SET label = %s, label_comment = %s, labelled_by = %s,"
        " labelled_at = now() WHERE id = %s"
    )
    + _RETURNING
)


def as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(COLUMNS, row, strict=True))
