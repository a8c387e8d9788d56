"""What a client's role reports beside its frames (`Protocol.client_role`'s `measurements`), and the one check of a
remote client's report against what its stack's layers declare (`Protocol.reported`).

A schema maps a name to one of: `Seconds` (a finite number >= 0), a tuple of numbers (the values a per-client counter
may take, e.g. a clipped flag (0.0, 1.0)), `str` (text of at most `MAX_TEXT` characters, e.g. a hex key) or a nested
schema (a dict: the count protocol's layers under adaptive clipping). A report must hold exactly the schema's names."""

from __future__ import annotations

import json
import math

from protocols.core.errors import MalformedMessage


class Seconds:
    """A client's CPU seconds: a finite number >= 0."""


MAX_JSON = 16_384  # characters of a client's measurements as JSON (an honest one is well under 1 KB)
MAX_TEXT = 1_024  # characters of one text field


def is_finite_number(value) -> bool:
    """An int or float (not a bool) that is finite: what an untrusted number must be before use."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(value, schema, path: str, sender: str, party: str, stage: str) -> None:
    def bad(why: str):
        return MalformedMessage(f"{sender} sent measurements {path or '(top level)'} = {value!r:.60}: {why}", party=party, stage=stage)

    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise bad("not an object")
        if set(value) != set(schema):
            raise bad(f"names {sorted(value)!r:.80}, expected {sorted(schema)}")
        for name, inner in schema.items():
            _check(value[name], inner, f"{path}.{name}" if path else name, sender, party, stage)
    elif schema is Seconds:
        if not is_finite_number(value) or value < 0:
            raise bad("not a finite number >= 0")
    elif schema is str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise bad(f"not text of at most {MAX_TEXT} characters")
    elif not is_finite_number(value) or value not in schema:
        raise bad(f"not one of {schema}")


def parse_measurements(text, schema: dict, *, sender: str, party: str, stage: str) -> dict:
    """A remote client's measurements (JSON text, untrusted, from `sender`: e.g. "its node 101"), checked against
    `schema` (its stack's `reported()`).

    Raises:
        MalformedMessage: text that is not a string of at most `MAX_JSON` characters, does not parse (nesting too deep
            included), or whose value misses, adds or mistypes a name of `schema`, naming it and the value."""
    if not isinstance(text, str) or len(text) > MAX_JSON:
        raise MalformedMessage(f"{sender} sent measurements of {len(text) if isinstance(text, str) else type(text).__name__} characters, "
                               f"not JSON text of at most {MAX_JSON}", party=party, stage=stage)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"{sender} sent measurements that do not parse: {exc!s:.80}", party=party, stage=stage) from None
    _check(value, schema, "", sender, party, stage)
    return value
