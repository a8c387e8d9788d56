"""A stack's text: layer specs (a registered name and its field values), the string form
"clip(bound=1) > secagg+" (`parse`, `format_specs`), and TOML [[stack]] tables (`from_tables`). Parsing is
defensive: every refusal is a `StackError` naming the position (1 = outermost), the layer and the field."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


class StackError(ValueError):
    """A stack spec that cannot be parsed, validated or built; names the position (1 = outermost), layer and field."""

    def __init__(self, message: str, *, layer: str | None = None, position: int | None = None, field: str | None = None) -> None:
        where = " ".join(p for p in (f"position {position}" if position else "", f"layer {layer!r}" if layer else "",
                                     f"field {field!r}" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.layer, self.position, self.field = layer, position, field


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One layer as given: its registered name and field values (str, int, float, bool)."""

    layer: str
    fields: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, layer: str, **fields: object) -> LayerSpec:
        return cls(layer, tuple(fields.items()))

    @property
    def values(self) -> dict:
        return dict(self.fields)

    def to_dict(self) -> dict:
        return {"layer": self.layer, **self.values}

    def __str__(self) -> str:
        return self.layer + (f"({', '.join(f'{k}={_format(v)}' for k, v in self.fields)})" if self.fields else "")


NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_+\-.]*")


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _WORD.fullmatch(value) and _bare(value) == value:
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value) if isinstance(value, float) else str(value)


def format_specs(specs: Iterable[LayerSpec]) -> str:
    """The string form `parse` reads back: "clip(bound=1.0) > secagg+"."""
    return " > ".join(str(s) for s in specs)


def _bare(text: str) -> object:
    """An unquoted value: true/false, none, an int, a float, else the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _value(text: str, position: int, layer: str, key: str) -> object:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    value = _bare(text)
    if isinstance(value, str) and not _WORD.fullmatch(text):
        raise StackError(f"cannot read the value {text!r} (a number, true/false, none, a word or a \"quoted string\")",
                         layer=layer, position=position, field=key)
    return value


_ARG = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,"]*?)\s*(?:,|$)')


def parse(text: str) -> tuple[LayerSpec, ...]:
    """Reads "clip(bound=1) > randk(fraction=0.25) > secagg+": layers outermost first, separated by '>',
    each a registered name with optional (key=value, ...) fields.

    Raises:
        StackError: naming the position and the layer of the first part that does not parse.
    """
    if not isinstance(text, str) or not text.strip():
        raise StackError(f"a stack needs at least one layer, found {text!r}")
    specs = []
    for position, part in enumerate(_split(text), start=1):
        part = part.strip()
        name, paren, rest = part.partition("(")
        name = name.strip()
        if not NAME.fullmatch(name) or (paren and not rest.endswith(")")):
            raise StackError(f"expected name(key=value, ...), found {part!r}", position=position)
        args = rest[:-1] if paren else ""
        fields: dict[str, object] = {}
        at = 0
        while args.strip() and at < len(args):
            arg = _ARG.match(args, at)
            if arg is None or arg.end() == at:
                raise StackError(f"expected key=value at {args[at:].strip()!r}", layer=name, position=position)
            key = arg[1]
            if key in fields:
                raise StackError("given twice", layer=name, position=position, field=key)
            fields[key] = _value(arg[2], position, name, key)
            at = arg.end()
        specs.append(LayerSpec(name, tuple(fields.items())))
    return tuple(specs)


def _split(text: str) -> list[str]:
    """`text` split at the '>' outside quotes and parentheses (a backslash escapes the next character in quotes)."""
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and ch == ">":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if any(not p.strip() for p in parts):
        raise StackError(f"an empty layer between '>' in {text!r}")
    return parts


def from_tables(tables: object) -> tuple[LayerSpec, ...]:
    """Specs from a TOML array of tables ([[stack]] layer = "clip" bound = 1.0 ...), outermost first.

    Raises:
        StackError: naming the position, for a table without a string `layer` or a value that is not a scalar.
    """
    if not isinstance(tables, list) or not tables:
        raise StackError(f"[[stack]] must be a non-empty array of tables, found {tables!r}")
    specs = []
    for position, table in enumerate(tables, start=1):
        if not isinstance(table, dict) or not isinstance(table.get("layer"), str):
            raise StackError(f"each [[stack]] table needs layer = \"<name>\", found {table!r}", position=position)
        name = table["layer"]
        for key, value in table.items():
            if not isinstance(value, (str, int, float, bool)):
                raise StackError(f"expected a number, boolean or string, found {type(value).__name__} {value!r}", layer=name,
                                 position=position, field=key)
        specs.append(LayerSpec(name, tuple((k, v) for k, v in table.items() if k != "layer")))
    return tuple(specs)
