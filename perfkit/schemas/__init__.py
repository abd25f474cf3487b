"""JSON Schemas of perfkit's outputs (``--json`` and summary.json), shipped in the package."""

from __future__ import annotations

import json
from importlib import resources

NAMES = ("command", "summary", "finding")


def load(name: str) -> dict:
    """The schema ``name`` (one of :data:`NAMES`) as a dict."""
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}; one of {', '.join(NAMES)}")
    return json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))


def validator(name: str):
    """A jsonschema validator for ``name``, its ``$ref`` to the finding schema resolved locally
    (jsonschema is a dev dependency: the tests use this)."""
    import jsonschema
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (f"https://perfkit.invalid/schemas/1/{other}.schema.json", Resource.from_contents(load(other)))
        for other in NAMES)
    schema = load(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
