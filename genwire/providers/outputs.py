"""Copying a provider's outputs into genwire's storage, before the provider deletes
them (Replicate after an hour, fal within minutes): every file URL of the result (as
its adapter picks them) is downloaded, hashed and stored as an artifact, and
replaced by genwire's own URL.

A result can echo what the user sent (a prompt that is a URL), so a download goes
only to public addresses, checked at each redirect, as webhook targets are (SPEC §8),
unless private outputs are allowed (a provider's fake on loopback, in tests).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from genwire.models import Artifact
from genwire.storage import safe_name
from genwire.webhooks.targets import RefusedTarget, pinned_target

#: pauses before the 2nd and 3rd try of a download that failed in a way worth retrying
DOWNLOAD_BACKOFF_S = (1.0, 3.0)
MAX_OUTPUT_BYTES = 8 * 1024**3
MAX_REDIRECTS = 5
_FINAL_STATUSES = frozenset({401, 403, 404, 410})

StoreArtifact = Callable[[Path, str, str | None], Awaitable[Artifact]]


class OutputUnavailable(Exception):
    """An output could not be fetched: the job fails rather than link to nothing."""


def file_urls(result: Any, is_file_field: Callable[[str | None], bool]) -> list[str]:
    """The http(s) URLs of a provider's result held by a field `is_file_field` accepts
    (None: an item of a list, or the result itself), in order, once each."""
    found: dict[str, None] = {}

    def walk(value: Any, field: str | None) -> None:
        if isinstance(value, str):
            if value.startswith(("https://", "http://")) and is_file_field(field):
                found.setdefault(value, None)
        elif isinstance(value, dict):
            for name, item in value.items():
                walk(item, str(name))
        elif isinstance(value, list):
            for item in value:
                walk(item, field)

    walk(result, None)
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
    urls: list[str],
    result: Any,
    workdir: Path,
    store_artifact: StoreArtifact,
    *,
    allow_private: bool = False,
) -> tuple[Any, list[Artifact], list[Path]]:
    """The result with genwire's URLs in place of `urls`, the artifacts, and the same
    files kept in `workdir` (links: storage takes the originals) to work on further."""
    replacements: dict[str, str] = {}
    artifacts: list[Artifact] = []
    kept: list[Path] = []
    used_names: set[str] = set()
    timeout = httpx.Timeout(60.0, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for index, url in enumerate(urls):
            name = _unique(_name_of(url, index), used_names)
            target = workdir / f"output-{index}-{name}"
            media_type = await _download(client, url, target, allow_private)
            keep = target.with_name(f"kept-{target.name}")
            await asyncio.to_thread(_link_or_copy, target, keep)
            kept.append(keep)
            artifact = await store_artifact(target, name, media_type)
            artifacts.append(artifact)
            replacements[url] = artifact.url
    return replace_urls(result, replacements), artifacts, kept


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


async def _download(
    client: httpx.AsyncClient,
    url: str,
    target: Path,
    allow_private: bool,
) -> str | None:
    """Fetch `url` into `target`; its media type. Raises OutputUnavailable."""
    problem = ""
    for attempt in range(len(DOWNLOAD_BACKOFF_S) + 1):
        if attempt:
            await asyncio.sleep(DOWNLOAD_BACKOFF_S[attempt - 1])
        try:
            async with _open(client, url, allow_private) as answer:
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
        except (httpx.HTTPError, OSError) as error:
            problem = f"{_shown(url)}: {type(error).__name__}"
    raise OutputUnavailable(f"could not fetch {problem} after {len(DOWNLOAD_BACKOFF_S) + 1} tries")


@asynccontextmanager
async def _open(
    client: httpx.AsyncClient, url: str, allow_private: bool
) -> AsyncIterator[httpx.Response]:
    """The answer to GET `url`, following up to MAX_REDIRECTS redirects, each hop's
    address checked to be public (RefusedTarget is final: OutputUnavailable)."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            target = await pinned_target(url, allow_private)
        except RefusedTarget:
            raise OutputUnavailable(f"{_shown(url)} is in a private address range") from None
        request = client.build_request(
            "GET", target.url, headers=target.headers, extensions=target.extensions
        )
        answer = await client.send(request, stream=True)
        location = answer.headers.get("location")
        if answer.is_redirect and location:
            await answer.aclose()
            url = str(httpx.URL(url).join(location))
            continue
        try:
            yield answer
        finally:
            await answer.aclose()
        return
    raise OutputUnavailable(f"{_shown(url)}: more than {MAX_REDIRECTS} redirects")


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
    """A URL without its query (it may carry a signature) or user info."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
