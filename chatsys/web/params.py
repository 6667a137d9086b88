"""Request parameters as the original Rails API read them (``params``), and their checks.

Rails merges the query string, the body and the path into one ``params``: the body may be JSON,
form-encoded or multipart; the path wins over the body, the body over the query string.  A
controller takes the fields it permits and ignores the rest; a number may come as a string of
digits ("1"); a value that is not a scalar (an array, an object) is not permitted and counts as
absent.  The original models validated presence only (``validates :name, presence: true``); here
a blank, too long or unstorable value gets a 422 in the original's error shape, ``{"field":
["message"]}``, where the original failed with a 500 or stored it.
"""

from __future__ import annotations

import re
from typing import Any

from chatsys.web.errors import MalformedBody, PayloadTooLarge, ValidationFailed
from chatsys.web.validation import INT32_MAX, decode_json

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
SCALARS = (str, int, float, bool)
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*")
# The most characters each field may hold (the /v1 API's limits, from the same OpenAPI schemas).
MAX_LENGTH = {"name": 255, "body": 10_000}


def original_params(request) -> dict[str, Any]:
    """``params`` of a request to the original API: query string, then body, then path."""
    params: dict[str, Any] = {}
    for key, value in request.GET.items():
        params[key] = value
    params.update(_body(request))
    params.update(request.matchdict or {})
    return {key: value for key, value in params.items() if isinstance(value, SCALARS)}


def _body(request) -> dict[str, Any]:
    limit = request.registry.settings["chatsys.max_body_bytes"]
    if (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
    raw = request.body
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
    if request.content_type in FORM_TYPES:
        try:
            return dict(request.POST.items())
        except ValueError:  # a multipart body without a boundary, say
            raise MalformedBody("The request body cannot be read as a form.") from None
    if request.content_type not in JSON_TYPES:
        return {}  # Rails reads no parameters from a body it does not parse
    if not raw.strip():
        return {}
    parsed = decode_json(request, raw)
    # A JSON array or scalar is Rails's params["_json"], which no controller permits.
    return parsed if isinstance(parsed, dict) else {}


def number(params: dict[str, Any], name: str) -> int | None:
    """A chat or message number: a positive integer, or a string of its digits; else None."""
    value = params.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (match := _DIGITS.fullmatch(value)):
        number = int(match.group(1))
    else:
        return None
    return number if 1 <= number <= INT32_MAX else None


# A whole number given for a text field is taken as its text, within these bounds (the OpenAPI
# document says so); a fraction, or a larger number, is not text anyone meant.
MAX_NUMBER_AS_TEXT = 999_999_999_999


def text(params: dict[str, Any], name: str) -> str | None:
    """A permitted text field as Rails cast it to a string column; None when absent.

    Raises ValueError for a number that is not a whole one within ``MAX_NUMBER_AS_TEXT``.
    """
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) <= MAX_NUMBER_AS_TEXT:
        return str(value)
    raise ValueError(name)


def required_text(params: dict[str, Any], name: str) -> str:
    """A field the original's model validated with ``presence: true``; 422 unless it is text
    that is not blank, not too long, and storable."""
    problem = _problem(params, name)
    if problem is not None:
        raise ValidationFailed(f"{name}: {problem}", details=[{"field": name, "message": problem}])
    return text(params, name)


def _problem(params: dict[str, Any], name: str) -> str | None:
    try:
        value = text(params, name)
    except ValueError:
        return "is invalid"
    if value is None or not value.strip():
        return "can't be blank"
    if len(value) > MAX_LENGTH[name]:
        return f"is too long (maximum is {MAX_LENGTH[name]} characters)"
    if "\x00" in value or not _is_storable(value):
        return "is invalid"
    return None


def _is_storable(value: str) -> bool:
    try:
        value.encode("utf-8")  # a lone surrogate ("\ud800") is valid JSON but not text
    except UnicodeEncodeError:
        return False
    return True


def includeme(config) -> None:
    config.add_request_method(original_params, "original_params", reify=True)
