"""Request parsing and validation, driven by the schemas of the OpenAPI document.

Order of checks for a body: 415 (not JSON) → 413 (too large) → 400 (not parseable JSON,
duplicate keys, NaN, nesting too deep) → 422 (schema, naming the field).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import TYPE_CHECKING, Any

import fastjsonschema

from chatsys.web.errors import (
    MalformedJSON,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from chatsys.web.openapi import SPEC_URI, load_spec

if TYPE_CHECKING:
    from jsonschema import Draft4Validator
    from jsonschema.exceptions import ValidationError

INT32_MAX = 2**31 - 1
JSON_TYPES = ("application/json",)
ROOT = "$"


def _inline(node: Any, spec: dict) -> Any:
    """The schema with every ``#/components/...`` $ref replaced by its target (no cycles here)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target[part]
            return _inline(target, spec)
        return {key: _inline(value, spec) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, spec) for item in node]
    return node


@cache
def _fast_validator(schema_name: str):
    """The same schema compiled to Python by fastjsonschema: the check every request pays.

    Only a request that fails it goes through jsonschema, whose errors name the field.
    """
    spec = load_spec()
    return fastjsonschema.compile(_inline(spec["components"]["schemas"][schema_name], spec))


def includeme(config) -> None:
    """Compile every schema's fast validator while the app is built, not on first use.

    ``functools.cache`` does not serialise first calls: the burst of requests that reaches a
    freshly started worker used to parse the document and compile the same schemas once per
    request thread, in parallel under one GIL, and the first creates took 1-3 s.
    """
    for name in load_spec()["components"]["schemas"]:
        _fast_validator(name)


@cache
def _validator(schema_name: str) -> Draft4Validator:
    # Imported on the first invalid request only: valid ones never need it.
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    # OpenAPI 3.0 schema objects are (close to) JSON Schema draft 4; the document is registered
    # as one resource so that $refs between components resolve.
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(load_spec(), default_specification=DRAFT4))
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft4Validator(schema, registry=registry)


def _describe(error: ValidationError) -> list[dict]:
    path = ".".join(str(p) for p in error.absolute_path)
    kind = error.validator
    if kind == "required":
        missing = [f for f in error.validator_value if f not in error.instance]
        return [{"field": _join(path, f), "message": "is required"} for f in missing]
    if kind == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(f for f in error.instance if f not in allowed)
        return [{"field": _join(path, f), "message": "is not an allowed field"} for f in extra]
    field = path or ROOT
    if kind == "type":
        expected = error.validator_value
        if field == ROOT and expected == "object":
            return [{"field": ROOT, "message": "the request body must be a JSON object"}]
        return [{"field": field, "message": f"must be of type {expected}"}]
    if kind == "minLength":
        message = (
            "must not be empty"
            if error.validator_value == 1
            else (f"must be at least {error.validator_value} characters")
        )
    elif kind == "maxLength":
        message = f"must be at most {error.validator_value} characters"
    elif kind == "pattern":
        message = "must contain a non-space character and no NUL character"
    elif kind == "minimum":
        message = f"must be at least {error.validator_value}"
    elif kind == "maximum":
        message = f"must be at most {error.validator_value}"
    elif kind == "enum":
        message = f"must be one of {', '.join(map(str, error.validator_value))}"
    else:
        message = "is not valid"
    return [{"field": field, "message": message}]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate(schema_name: str, instance: Any) -> Any:
    """Validate ``instance`` against ``#/components/schemas/<schema_name>``; raise 422 on failure."""
    try:
        _fast_validator(schema_name)(instance)
    except fastjsonschema.JsonSchemaException:
        pass  # explain it below, with jsonschema
    else:
        _check_unicode(instance, ROOT)
        return instance
    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details: list[dict] = []
        seen: set[str] = set()
        for error in errors:
            for detail in _describe(error):
                # One complaint per field is enough (an empty name also fails its pattern).
                if detail["field"] not in seen:
                    seen.add(detail["field"])
                    details.append(detail)
        first = details[0]
        raise ValidationFailed(f"{first['field']}: {first['message']}", details=details)
    _check_unicode(instance, ROOT)
    return instance


def _check_unicode(value: Any, path: str) -> None:
    # JSON may carry lone surrogates ("\ud800"): valid JSON, not storable text.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed.for_field(path.removeprefix("$."), "contains invalid Unicode") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(item, f"{path}.{key}")


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise MalformedJSON(f"The JSON object has the key {key!r} more than once.")
        result[key] = value
    return result


def no_constants(name: str):
    raise MalformedJSON(f"{name} is not valid JSON.")


# Far more digits than any number the API takes, far fewer than int()'s own limit (4,300), past
# which it raises a ValueError that is not a JSONDecodeError.
MAX_INT_DIGITS = 32


def bounded_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS:
        raise MalformedJSON(f"A number in the request body has more than {MAX_INT_DIGITS} digits.")
    return int(digits)


def parse_json(request, required: bool = True) -> Any:
    """Read the request body as JSON within the configured size limit."""
    limit = request.registry.settings["chatsys.max_body_bytes"]
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
    raw = request.body
    if not raw.strip():
        if required:
            if request.content_type and request.content_type not in JSON_TYPES:
                raise UnsupportedMediaType()
        return {}
    if request.content_type not in JSON_TYPES:
        raise UnsupportedMediaType()
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
    return decode_json(request, raw)


def decode_json(request, raw: bytes) -> Any:
    """The JSON document of a request body: UTF-8, no duplicate keys, no NaN, bounded integers."""
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("The request body must be UTF-8 encoded JSON.")
    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants, parse_int=bounded_int)
    except UnicodeDecodeError:
        raise MalformedJSON("The request body is not valid UTF-8.") from None
    except RecursionError:
        raise MalformedJSON("The JSON document is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.") from None


def json_body(request, schema_name: str, required: bool = True) -> dict:
    """Parse and validate the request body against a named schema of the OpenAPI document."""
    return validate(schema_name, parse_json(request, required=required))


_DIGITS = re.compile(r"[0-9]{1,10}")


def parse_path_number(value: str | None) -> int | None:
    """A chat or message number from a path: positive 32-bit decimal, else ``None`` (→ 404)."""
    if value is None or not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if 1 <= number <= INT32_MAX else None


def query_int(request, name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ValidationFailed.for_field(name, "must be an integer")
    value = int(raw) if len(raw) <= 12 else maximum + 1
    if value < minimum:
        raise ValidationFailed.for_field(name, f"must be at least {minimum}")
    if value > maximum:
        raise ValidationFailed.for_field(name, f"must be at most {maximum}")
    return value


def query_choice(request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise ValidationFailed.for_field(name, f"must be one of {', '.join(choices)}")
    return raw


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key(request) -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(raw):
        raise ValidationFailed.for_field(
            "Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces"
        )
    return raw
