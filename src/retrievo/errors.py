"""One error hierarchy for retrievo.

Every error the library raises on bad input or state derives from :class:`RetrievoError`, so callers
(the CLI, later the HTTP server) can map them to exit codes or statuses in one place. Messages say what
was expected, what came, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "RetrievoError",
    "InvalidInputError",
    "DocumentError",
    "DuplicateIdError",
    "SourceFormatError",
    "FilterError",
    "NotFoundError",
    "CollectionExistsError",
    "FormatVersionError",
    "ConfigError",
    "MissingDependencyError",
    "ShardUnavailableError",
]


class RetrievoError(Exception):
    """Base class of every error retrievo raises on purpose."""


class InvalidInputError(RetrievoError, ValueError):
    """The caller passed a value that cannot be used (wrong type, out of range, empty)."""


class DocumentError(InvalidInputError):
    """A document is malformed (missing id, empty text, metadata that is not a JSON object)."""


class DuplicateIdError(InvalidInputError):
    """The same document id appears twice in one batch, or `add` was given an id that already exists."""


class SourceFormatError(InvalidInputError):
    """A source file (JSONL, CSV, Parquet, BEIR folder) is malformed; the message names file and line."""


class FilterError(InvalidInputError):
    """A metadata filter is malformed, names an unknown field or compares a field with the wrong type."""


class ConfigError(InvalidInputError):
    """A configuration value is invalid."""


class NotFoundError(RetrievoError, KeyError):
    """A collection, document or file does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class CollectionExistsError(RetrievoError, FileExistsError):
    """`Collection.create` was pointed at a folder that already holds a collection."""


class FormatVersionError(RetrievoError):
    """The collection on disk was written by a newer (or unknown) format version."""


class MissingDependencyError(RetrievoError, ImportError):
    """An optional dependency is not installed; the message gives the pip command that fixes it."""


class ShardUnavailableError(RetrievoError, RuntimeError):
    """A shard of a sharded collection did not answer (its actor died or timed out); the message names it."""
