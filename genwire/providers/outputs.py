"""Copying a provider's outputs into genwire's storage, before the provider deletes
them (Replicate after an hour, fal within minutes): every file URL of the result is
downloaded, hashed and stored as an artifact, and replaced by genwire's own URL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from genwire.models import Artifact
from genwire.storage import safe_name

#: pauses before the 2nd and 3rd try of a download that failed in a way worth retrying
DOWNLOAD_BACKOFF_S = (1.0, 3.0)
MAX_OUTPUT_BYTES = 8 * 1024**3
_FINAL_STATUSES = frozenset({401, 403, 404, 410})

StoreArtifact = Callable[[Path, str, str | None], Awaitable[Artifact]]


class OutputUnavailable(Exception):
    """An output could not be fetched: the job fails rather than link to nothing."""


def file_urls(result: Any) -> list[str]:
    """Every http(s) URL in a provider's result, in order, once each."""
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if value.startswith(("https://", "http://")):
                found.setdefault(value, None)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(result)
    return list(found)


def replace_urls(result: Any, replacements: dict[str, str]) -> Any:
    if isinstance(result, str):
        return replacements.get(result, result)
    if isinstance(result, dict):
        return {key: replace_urls(value, replacements) for key, value in result.items()}
    if isinstance(result, list):
        return [replace_urls(value, replacements) for value in result]
    return result


async def copy_outputs(
    result: Any,
    workdir: Path,
    store_artifact: StoreArtifact,
    *,
    backoff_s: tuple[float, ...] = DOWNLOAD_BACKOFF_S,
) -> tuple[Any, list[Artifact]]:
    """The result with genwire's URLs in place of the provider's, and the artifacts."""
    replacements: dict[str, str] = {}
    artifacts: list[Artifact] = []
    used_names: set[str] = set()
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)) as client:
        for index, url in enumerate(file_urls(result)):
            name = _unique(_name_of(url, index), used_names)
            target = workdir / f"output-{index}-{name}"
            media_type = await _download(client, url, target, backoff_s)
            artifact = await store_artifact(target, name, media_type)
            artifacts.append(artifact)
            replacements[url] = artifact.url
    return replace_urls(result, replacements), artifacts


async def _download(
    client: httpx.AsyncClient, url: str, target: Path, backoff_s: tuple[float, ...]
) -> str | None:
    """Fetch `url` into `target`; its media type. Raises OutputUnavailable."""
    problem = ""
    for attempt in range(len(backoff_s) + 1):
        if attempt:
            await asyncio.sleep(backoff_s[attempt - 1])
        try:
            async with client.stream("GET", url) as answer:
                if answer.status_code in _FINAL_STATUSES:
                    raise OutputUnavailable(f"{_shown(url)} answered {answer.status_code}")
                if not answer.is_success:
                    problem = f"{_shown(url)} answered {answer.status_code}"
                    continue
                size = 0
                with target.open("wb") as handle:
                    async for chunk in answer.aiter_bytes(1 << 20):
                        size += len(chunk)
                        if size > MAX_OUTPUT_BYTES:
                            raise OutputUnavailable(
                                f"{_shown(url)} is over {MAX_OUTPUT_BYTES} bytes"
                            )
                        handle.write(chunk)
                media_type = str(answer.headers.get("content-type", "")).split(";")[0].strip()
                if media_type in ("", "application/octet-stream", "binary/octet-stream"):
                    return None
                return media_type
        except httpx.HTTPError as error:
            problem = f"{_shown(url)}: {type(error).__name__}"
    raise OutputUnavailable(f"could not fetch {problem} after {len(backoff_s) + 1} tries")


def _name_of(url: str, index: int) -> str:
    last = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    name = safe_name(last) if last else f"output-{index}"
    if "." not in name:
        name = f"{name}.bin"
    return name


def _unique(name: str, used: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{stem}-{number}{dot}{suffix}"
    used.add(candidate)
    return candidate


def _shown(url: str) -> str:
    """A URL without its query, which may carry a signature."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
