"""Domain errors: one place, mapped to HTTP codes in ``api`` and to exit codes in ``cli``.

Each error carries a message written for the person who has to fix it (what is wrong,
where, and what to do), never a bare traceback.
"""

from __future__ import annotations


class QCError(Exception):
    """Base class of every error the station raises on purpose."""

    exit_code: int = 1
    http_status: int = 400


class SpecError(QCError):
    """A spec file is missing, unreadable or invalid (names the field)."""

    exit_code = 3


class CalibrationError(QCError):
    """A calibration is missing, invalid, or could not be computed from the views given."""

    exit_code = 4


class ModelError(QCError):
    """The defect model file is missing, corrupt, or does not match what the station expects."""

    exit_code = 5
    http_status = 503


class ImageError(QCError):
    """An image could not be read or decoded."""

    exit_code = 6


class CameraError(QCError):
    """The camera is unavailable (unplugged, busy, misconfigured)."""

    exit_code = 7
    http_status = 503


class StorageError(QCError):
    """The store cannot write (disk full, read-only, corrupt database)."""

    exit_code = 8
    http_status = 507


class NotFoundError(QCError):
    """A requested record (batch, inspection, user) does not exist."""

    http_status = 404


class ConflictError(QCError):
    """The request conflicts with the current state (e.g. a batch is already open)."""

    http_status = 409


class AuthError(QCError):
    """Missing or invalid token, or a role that may not do this."""

    http_status = 401


class ConfigError(QCError):
    """The station configuration file is invalid."""

    exit_code = 9
