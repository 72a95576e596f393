"""What a collection learnt: calibrators (one per search setting), the query adapter and the query map.

They are kept as plain files in the collection's folder (``calibration/<setting>.json``,
``adapters/query_adapter.{npy,json}``, ``query_map/``), loaded once, and read again when their file changes — a server's
reader sees a calibration or an adapter that another process learnt. A calibrator is filed under the
:meth:`~retrievo.request.SearchRequest.key` of the setting it was fitted under, so a search is only ever
cut by a calibrator of its own setting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrievo.errors import InvalidInputError
from retrievo.request import SearchRequest

__all__ = ["LearnedArtefacts"]


class LearnedArtefacts:
    """The learned files of the collection in ``folder`` (``readonly``: they may be read, not saved)."""

    def __init__(self, folder: Path, readonly: bool) -> None:
        self.folder = Path(folder)
        self.readonly = readonly
        self._loaded: dict[tuple[str, ...], tuple[int, Any]] = {}

    def check_can_save(self, what: str) -> None:
        if self.readonly:
            raise InvalidInputError(f"{self.folder}: opened read-only; cannot save the {what}")

    def _file(self, key: tuple[str, ...], path: Path, load: Callable[[Path], Any], missing: str) -> Any:
        """What ``load(path)`` gives, kept in memory and read again when the file changes;
        :class:`InvalidInputError` (``missing``) when there is no such file."""
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise InvalidInputError(f"{self.folder}: {missing}") from None
        cached = self._loaded.get(key)
        if cached is None or cached[0] != stamp:
            cached = self._loaded[key] = (stamp, load(path))
        return cached[1]

    # -- calibrators ------------------------------------------------------------------------------------
    def calibration_path(self, request: SearchRequest) -> Path:
        """Where the calibrator of a resolved request's setting is kept."""
        return self.folder / "calibration" / f"{request.slug()}.json"

    def calibrator(self, request: SearchRequest) -> Any:
        """The calibrator fitted for a resolved request's setting."""
        from retrievo.search.calibration import ScoreCalibrator

        key = request.key()
        missing = f"no calibration for method {request.method!r}"
        if ";" in key:
            missing += f" with the settings {key!r}"
        others = self.calibrated(request.method)
        missing += "; fit one with Collection.calibrate() or `retrievo calibrate` (with the same settings)"
        if others:
            missing += f"; this method is calibrated for: {', '.join(map(repr, others))}"
        return self._file(("calibration", key), self.calibration_path(request), ScoreCalibrator.load, missing)

    def calibrated(self, method: str) -> list[str]:
        """The settings of ``method`` that have a calibrator."""
        out = []
        for p in sorted((self.folder / "calibration").glob("*.json")):
            try:
                meta = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("method") == method:
                out.append(meta.get("key") or method)
        return out

    def save_calibrator(self, calibrator: Any, request: SearchRequest) -> Path:
        self.check_can_save("calibration")
        path = self.calibration_path(request)
        calibrator.save(path)
        return path

    # -- the query adapter -----------------------------------------------------------------------------------
    @property
    def adapter_folder(self) -> Path:
        return self.folder / "adapters"

    def query_adapter(self) -> Any:
        """The query adapter learnt for the dense signal."""
        from retrievo.search.adapters import QueryAdapter

        return self._file(("adapter",), self.adapter_folder / "query_adapter.npy", lambda p: QueryAdapter.load(p.parent),
                          "no query adapter; learn one with Collection.fit_query_adapter() or `retrievo adapt`")

    # -- the query map (query drift compensation) ---------------------------------------------------------
    @property
    def query_map_folder(self) -> Path:
        return self.folder / "query_map"

    def query_map(self) -> Any:
        """The map from a newer model's queries into the stored vectors' space."""
        from retrievo.search.query_maps import QueryMap

        return self._file(("query_map",), self.query_map_folder / "matrix.npy", lambda p: QueryMap.load(p.parent),
                          "no query map; fit one with Collection.searcher.fit_query_map() or `retrievo map-queries`")
