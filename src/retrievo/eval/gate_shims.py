"""``Collection.add/upsert(screen=True)``, ``quarantined``, ``quarantine_count``, ``release`` and
``drop_quarantined``: the admission gate's methods as a collection offers them, kept apart from storage. Each is a
thin shim over :mod:`retrievo.eval.audit` (the gate, its quarantine file in the collection's folder), where the
work is; :class:`~retrievo.store.collection.Collection` inherits them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["QuarantineShims"]


class QuarantineShims:
    """The admission gate's methods of a collection (needs ``path`` and ``lock_for_writing``)."""

    path: Any
    lock_for_writing: Callable[[], None]

    def _screened(self, docs: Iterable[Any], vectors: Any, where: str,
                  max_fpr: float) -> int:
        from retrievo.eval.audit import screen_into

        return screen_into(self, docs, vectors, where, max_fpr=max_fpr)

    def quarantined(self, text_chars: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Documents the admission gate held back (``{id, suspicion, reasons, signs, held_at}``, most suspicious
        first; with ``text_chars`` also their title and the start of their text); never searchable until
        :meth:`release`. See :mod:`retrievo.eval.audit`."""
        from retrievo.eval.audit import Quarantine

        return Quarantine.read(self.path, text_chars, limit)

    def quarantine_count(self) -> int:
        """How many documents the admission gate holds back."""
        from retrievo.eval.audit import Quarantine

        return Quarantine.count(self.path)

    def release(self, ids: Sequence[str]) -> int:
        """Buffer quarantined documents (an explicit decision); the commit that adds them removes them from the
        quarantine. Call :meth:`commit`."""
        from retrievo.eval.audit import release_quarantined

        return release_quarantined(self, ids)

    def drop_quarantined(self, ids: Sequence[str]) -> int:
        """Forget quarantined documents for good (an explicit decision; an unknown id changes nothing)."""
        from retrievo.eval.audit import Quarantine

        self.lock_for_writing()
        with Quarantine(self.path) as q:
            return q.drop(ids)
