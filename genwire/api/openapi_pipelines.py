"""How `/openapi.json` describes a body whose `input` is the input of the pipeline
it names: `oneOf` one variant per pipeline of the app's own registry, with a
`discriminator` on `pipeline`: `pipeline` a `const`, `input` that pipeline's input
schema, its `$defs` hoisted into the components under names of its own.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from genwire.models import JsonObject
from genwire.pipelines.base import Pipeline

REF = "#/components/schemas/{model}"
#: What a component's name may hold (OpenAPI 3.1 §4.8.7, Components Object); anything
#: else becomes "_".
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9._-]")
#: Where a schema holds data, not schemas: a `$ref` key there is no reference.
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "example", "examples"})
#: Where a schema maps names (a property called `default`, say) to schemas.
_SCHEMAS_BY_NAME = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})


def describe_per_pipeline(
    schemas: dict[str, JsonObject], bodies: list[str], pipelines: list[Pipeline]
) -> None:
    """Each of `bodies` (component names) becomes `oneOf` its variants, one per
    pipeline, each a component of its own so that the discriminator can map to it."""
    if not pipelines:
        return  # `oneOf` needs a variant: the body stays as its model says
    taken = set(schemas)

    def claim(wanted: str) -> str:
        """A component name of its own: pipelines are named freely, and may clash."""
        base = _NOT_IN_A_NAME.sub("_", wanted)
        name, suffix = base, 1
        while name in taken:
            suffix += 1
            name = f"{base}-{suffix}"
        taken.add(name)
        return name

    inputs = {pipeline.name: _hoist_input(pipeline, schemas, claim) for pipeline in pipelines}
    for body in bodies:
        model = schemas[body]
        mapping = {}
        for pipeline in pipelines:
            name = claim(f"{body}.{pipeline.name}")
            schemas[name] = _variant(model, pipeline, inputs[pipeline.name], schemas)
            mapping[pipeline.name] = REF.format(model=name)
        schemas[body] = {
            "title": model.get("title", body),
            "description": f"{model.get('description', '')} One variant per pipeline.".lstrip(),
            "oneOf": [{"$ref": target} for target in mapping.values()],
            "discriminator": {"propertyName": "pipeline", "mapping": mapping},
        }


def _hoist_input(
    pipeline: Pipeline, schemas: dict[str, JsonObject], claim: Callable[[str], str]
) -> str:
    """The pipeline's input schema as a component, its `$defs` as components beside
    it; returns the component's name. Every local `$ref` is rewritten to resolve in
    the document: `#/$defs/X…` to X's component, any other `#…` into the input's own."""
    schema = pipeline.input_model.model_json_schema()
    definitions: JsonObject = schema.pop("$defs", {})
    own = claim(f"{pipeline.name}.input")
    defs = {name: claim(f"{pipeline.name}.{name}") for name in definitions}
    for name, definition in definitions.items():
        schemas[defs[name]] = _rewrite_refs(definition, own, defs)
    schemas[own] = _rewrite_refs(schema, own, defs)
    return own


def _rewrite_refs(schema: Any, own: str, defs: Mapping[str, str], *, names: bool = False) -> Any:
    """`schema` with its local `$ref`s re-rooted; `names`: a map of names to schemas."""
    if isinstance(schema, list):
        return [_rewrite_refs(item, own, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rewritten: JsonObject = {}
    for key, value in schema.items():
        if names:
            rewritten[key] = _rewrite_refs(value, own, defs)
        elif key == "$ref" and isinstance(value, str) and value.startswith("#"):
            rewritten[key] = _rewrite_ref(value, own, defs)
        elif key in _DATA_KEYWORDS:
            rewritten[key] = value
        else:
            rewritten[key] = _rewrite_refs(value, own, defs, names=key in _SCHEMAS_BY_NAME)
    return rewritten


def _rewrite_ref(reference: str, own: str, defs: Mapping[str, str]) -> str:
    """A JSON Pointer fragment (RFC 6901: "~1" stands for "/", "~0" for "~") re-rooted."""
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in reference[1:].split("/")]
    tokens = tokens[1:]  # the empty token before the pointer's first "/"
    if len(tokens) >= 2 and tokens[0] == "$defs" and tokens[1] in defs:
        target, rest = defs[tokens[1]], tokens[2:]
    else:
        target, rest = own, tokens
    return REF.format(model=target) + "".join(
        "/" + token.replace("~", "~0").replace("/", "~1") for token in rest
    )


def _variant(
    model: JsonObject, pipeline: Pipeline, input_name: str, schemas: Mapping[str, JsonObject]
) -> JsonObject:
    """`model` (a body's schema) for one pipeline: `pipeline` its name, `input` its
    input, which is required where the input has required fields (absent, it is `{}`)."""
    variant = copy.deepcopy(model)
    variant["title"] = pipeline.name
    variant.pop("description", None)  # the model's: of the body, not of this pipeline
    if pipeline.description:
        variant["description"] = pipeline.description
    variant["properties"]["pipeline"] = {"const": pipeline.name}
    variant["properties"]["input"] = {"$ref": REF.format(model=input_name)}
    needs_input = bool(schemas[input_name].get("required"))
    variant["required"] = [
        "pipeline",
        *(["input"] if needs_input else []),
        *(name for name in model.get("required", []) if name not in ("pipeline", "input")),
    ]
    return variant
