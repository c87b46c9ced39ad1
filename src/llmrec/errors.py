"""Errors a user can act on. The CLI prints their message, never a stack trace."""

from __future__ import annotations


class LlmrecError(Exception):
    """Base class for every error meant for the user."""


class DataError(LlmrecError):
    """Bad input data; the message names the file, the row and the column where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file, self.row, self.column, self.detail = file, row, column, message
        where = ", ".join(
            part
            for part in (
                file,
                f"row {row}" if row is not None else None,
                f"column '{column}'" if column is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class FetchError(LlmrecError):
    """A dataset could not be obtained or failed its checksum."""


class UnknownDatasetError(LlmrecError):
    """The named dataset is not in the data dir."""


class ConfigError(LlmrecError):
    """An invalid model name or parameter."""
