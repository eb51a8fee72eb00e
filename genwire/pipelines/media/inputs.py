"""Input fields shared by the media demo pipelines."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

MAX_PROMPT_CHARS = 1000


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Prompt = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="What to make."),
    AfterValidator(_not_blank),
]
