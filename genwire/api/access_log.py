"""The access log without secrets: a provider webhook's URL carries its call's
secret in the query (Runware signs nothing), a stream's URL its stream token, and
uvicorn logs every path whole."""

from __future__ import annotations

import logging

from genwire.providers.http import redact_query_secrets


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_query_secrets(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn").getChild("access")
    if not any(isinstance(item, RedactSecrets) for item in access.filters):
        access.addFilter(RedactSecrets())
