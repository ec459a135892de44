"""Pickled River models read back with only the classes they are made of.

River's models have no byte format of their own, so ``river_sad`` and ``river_hst``
keep theirs as pickle. ``pickle.loads`` runs whatever callable a blob names: anyone who
could write a worker's state table or changelog could run code in the worker
(``os.system`` by name). :func:`load` resolves only River's classes and the few plain
types their pickles hold; anything else is a ``ValueError``, as every other state that
cannot be read, and the series restarts that model.

>>> import pickle
>>> from river import stats
>>> load(pickle.dumps((stats.Mean(), 3), protocol=5))[1]
3
>>> load(pickle.dumps(print))
Traceback (most recent call last):
...
ValueError: a River state may not name builtins.print
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any

# what River's pickles of these models hold besides River's own classes
_PLAIN = frozenset(
    {
        ("builtins", "tuple"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "float"),
        ("builtins", "int"),
        ("collections", "defaultdict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("functools", "partial"),
        ("random", "Random"),
    }
)


class _RiverUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN:
            return super().find_class(module, name)
        if module == "river" or module.startswith("river."):
            __import__(module)
            found = getattr(sys.modules[module], name, None) if "." not in name else None
            if isinstance(found, type):  # a class, never a function of River's
                return found
        raise ValueError(f"a River state may not name {module}.{name}"[:200])


def load(blob: bytes) -> Any:
    """The object pickled in ``blob``; ``ValueError`` for one that names anything but
    River's classes and plain types, or that is no pickle."""
    try:
        return _RiverUnpickler(io.BytesIO(blob)).load()
    except ValueError:
        raise
    except Exception as exc:  # truncated, not a pickle, a class refusing its state
        raise ValueError(f"unreadable River state: {type(exc).__name__}") from None
