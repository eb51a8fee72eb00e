"""Errors the service and the API raise; each carries the HTTP status of its problem+json.

Their names differ from the client's (`genwire.client.errors`: `GenwireError`,
`NotFound`, …), so that a traceback says which side raised.

ServiceError              500  a bug: no handler expected it
├── BadRequest            400  a request the API cannot read (malformed JSON, a bad query
│                              or header); each instance names its status and code (413 …)
├── NotAuthenticated      401  no valid API key
├── UnknownId             404  unknown id, or another tenant's
├── StateConflict         409  cancel of an ended job
├── InputRejected         422  unknown pipeline, input failing its schema
│   └── ProviderNotConfigured  422  a pipeline of a provider whose key is not set
├── IdempotencyMismatch   422  same Idempotency-Key, different body
├── TooManyRequests       429  past a limit of SPEC §3 (its code names which), with the
│                              seconds to wait (`Retry-After`)
├── LeaseLost             500  a worker wrote to a job it no longer holds
├── StoreUnavailable      503  the database failed a read or write (its error is the
│                              cause; a worker retries, the API answers 503)
└── StorageUnavailable    503  the artifact storage (an S3 bucket) failed; a job whose
                               file it did not take fails, retryable

A subclass inherits its parent's status, so a new kind of UnknownId is still a 404.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str  #: dotted path, e.g. "input.prompt"
    message: str


class ServiceError(Exception):
    status = 500
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status = 400
    code = "bad-request"

    def __init__(self, message: str, *, status: int = 400, code: str = "bad-request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotAuthenticated(ServiceError):
    status = 401
    code = "unauthorized"


class UnknownId(ServiceError):
    status = 404
    code = "not-found"


class StateConflict(ServiceError):
    status = 409
    code = "conflict"


class InputRejected(ServiceError):
    status = 422
    code = "validation-error"

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.errors = errors


class ProviderNotConfigured(InputRejected):
    code = "provider-not-configured"


class IdempotencyMismatch(ServiceError):
    status = 422
    code = "idempotency-key-reused"


class TooManyRequests(ServiceError):
    status = 429
    code = "rate-limited"

    def __init__(self, message: str, *, code: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s  #: whole seconds, as `Retry-After` says them


class LeaseLost(ServiceError):
    code = "lease-lost"


class StoreUnavailable(ServiceError):
    status = 503
    code = "store-unavailable"


class StorageUnavailable(ServiceError):
    """Not a StoreUnavailable: a worker that releases its job on a database outage
    (nothing can run then anyway) would rerun it at once, in a loop, while only the
    storage is down."""

    status = 503
    code = "storage-unavailable"
