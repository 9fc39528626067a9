"""Errors raised by serendip: one class per status code of the C API (serendip_status).

Every error carries the C library's message, which names the file, line and field at fault
(for example ``ratings.csv:1042: field 3 (rating) "4,5" is not a number``), and its code.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Type

from ._lib import ErrorStruct


class Error(Exception):
    """Base class of every serendip error.

    Attributes:
        code: the C status code (1 io, 2 data, 3 format, 4 usage, 5 state).
        message: the C library's message (file, line and field when it has them).
        file: the file named at the start of the message ("path:" or "path:line:"), or None.
        line: the line number in that prefix, or None.
    """

    code: int = 0

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        m = re.match(r"^([^\s:]+):(?:(\d+):)?\s", message)
        self.file: Optional[str] = m.group(1) if m else None
        self.line: Optional[int] = int(m.group(2)) if m and m.group(2) else None


class IoError(Error):
    """A file could not be opened, read, written or renamed (SERENDIP_ERR_IO)."""
    code = 1


class DataError(Error, ValueError):
    """Malformed or inconsistent input data, or an unknown id (SERENDIP_ERR_DATA)."""
    code = 2


class FormatError(Error):
    """A foreign, truncated or wrong-version binary file (SERENDIP_ERR_FORMAT)."""
    code = 3


class UsageError(Error, ValueError):
    """An invalid argument: an unknown option, a value out of range (SERENDIP_ERR_USAGE)."""
    code = 4


class StateError(Error):
    """An earlier stage has not been run: the message names the stage (SERENDIP_ERR_STATE)."""
    code = 5


_BY_CODE: Dict[int, Type[Error]] = {c.code: c for c in (IoError, DataError, FormatError, UsageError, StateError)}


def error_of(code: int, message: str) -> Error:
    """The exception for a C status code and message."""
    return _BY_CODE.get(code, Error)(message, code)


def check(rc: int, err: ErrorStruct) -> None:
    """Raises the matching Error when a C call returned a non-zero status."""
    if rc:
        raise error_of(rc, err.message.decode("utf-8", errors="replace"))
