"""Entity and metric names: whole-string matches (``fullmatch``, never ``$``).

``$`` also matches before a trailing newline, which let ``"a/nl\\n"`` through;
the schema's patterns end in ``(?!\\n)$`` for the same reason.

>>> is_entity("plant-3/pump-7"), is_entity("plant-3/pump-7\\n"), is_entity("a//b")
(True, False, False)
>>> is_metric("temperature"), is_metric("9lives"), is_metric("t\\n")
(True, False, False)
"""

from __future__ import annotations

import re

ENTITY_RE = re.compile(r"[A-Za-z0-9_.:@-]+(?:/[A-Za-z0-9_.:@-]+)*", re.ASCII)
METRIC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", re.ASCII)
MAX_ENTITY = 200


def is_entity(name: str) -> bool:
    return 0 < len(name) <= MAX_ENTITY and ENTITY_RE.fullmatch(name) is not None


def is_metric(name: str) -> bool:
    return METRIC_RE.fullmatch(name) is not None
