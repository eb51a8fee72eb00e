"""Input fields shared by the media demo pipelines."""

from __future__ import annotations

import secrets
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_PROMPT_CHARS = 1000
MAX_SEED = 2**32 - 1


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Prompt = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PROMPT_CHARS, title="Prompt", description="What to make."),
    AfterValidator(_not_blank),
]


def seed_or_random(seed: int | None) -> int:
    """The seed asked for, else a random one (which the output names, to make it again)."""
    return seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
