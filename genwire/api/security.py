"""Headers that keep a browser from doing more with an answer than it says.

`X-Content-Type-Options: nosniff` goes on every answer: a browser then takes each
for the type it declares, so an artifact served as `text/plain` or
`application/octet-stream` never runs as a script or a page. The web page also
carries a Content-Security-Policy: its scripts and styles come from its own files
only (it has no inline ones), so an injection into the page runs nothing.
"""

from __future__ import annotations

from starlette.types import Message, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")

#: The page's policy: everything from its own origin; besides, the `data:,` favicon
#: (no request for one) and the `blob:` subtitle tracks the page makes from an SRT.
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def with_answer_headers(send: Send) -> Send:
    """`send`, adding the headers every answer carries to the start of each."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), NOSNIFF]}
        await send(message)

    return send_with_headers
