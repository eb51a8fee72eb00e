"""Reading a job's input from the command line: `key=value` and `key:=json` pairs
over an optional `--input` object, numbers read as the pipeline's schema wants."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click


def parse_input(pairs: tuple[str, ...], raw_json: str | None) -> tuple[dict[str, Any], set[str]]:
    """`key=value` (a string) and `key:=json` pairs, over an optional JSON object.

    Returns the values and the keys given as plain strings (`key=value`)."""
    values: dict[str, Any] = {}
    plain_keys: set[str] = set()
    if raw_json:
        try:
            parsed = json.loads(raw_json)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--input")
        values.update(parsed)
    for pair in pairs:
        if ":=" in pair and pair.index(":=") < pair.find("=") + 1:
            key, _, text = pair.partition(":=")
            plain_keys.discard(key)
            try:
                values[key] = json.loads(text)
            except json.JSONDecodeError as error:
                raise click.BadParameter(f"{pair!r}: not JSON: {error}") from None
        elif "=" in pair:
            key, _, text = pair.partition("=")
            values[key] = text
            plain_keys.add(key)
        else:
            raise click.BadParameter(f"{pair!r}: expected key=value or key:=json")
    return values, plain_keys


def coerce_to_schema(
    values: dict[str, Any], plain_keys: set[str], schema: dict[str, Any]
) -> dict[str, Any]:
    """Read `key=8` as the number 8 where the pipeline's schema wants no string."""
    properties = schema.get("properties", {})
    coerced = dict(values)
    for key in plain_keys & set(values):
        spec = properties.get(key, {})
        types = {spec.get("type")} | {option.get("type") for option in spec.get("anyOf", [])}
        if "string" in types or types <= {None}:
            continue
        with contextlib.suppress(json.JSONDecodeError):
            coerced[key] = json.loads(values[key])
    return coerced
