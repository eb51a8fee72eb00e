"""Errors the service raises; the API maps each to one problem+json type.

GenwireError
├── NotFound            404  unknown id, or another tenant's
├── InvalidInput        422  unknown pipeline, input failing its schema
├── Conflict            409  cancel of an ended job
├── IdempotencyMismatch 422  same Idempotency-Key, different body
└── LeaseLost                a worker wrote to a job it no longer holds
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str  #: dotted path, e.g. "input.prompt"
    message: str


class GenwireError(Exception):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(GenwireError):
    code = "not-found"


class InvalidInput(GenwireError):
    code = "validation-error"

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.errors = errors


class Conflict(GenwireError):
    code = "conflict"


class IdempotencyMismatch(GenwireError):
    code = "idempotency-key-reused"


class LeaseLost(GenwireError):
    code = "lease-lost"
