"""Backward-compatibility check between a published JSON Schema and the current one.

A change is compatible when (a) every document valid under the published schema is still valid under
the current one (new readers accept old data) and (b) every property the published schema required is
still required (old readers still find what they relied on). Adding optional properties and widening
types, enums or limits is compatible; adding a required property, removing or retyping one, narrowing
an enum or tightening a limit is not.

The checker understands the subset of JSON Schema that pydantic emits: ``$ref``/``$defs``, ``anyOf``,
``oneOf``, ``type``, ``properties``, ``required``, ``items``, ``prefixItems``, ``enum``, ``const``,
``format``, ``pattern`` and the numeric/length limits.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def breaking_changes(published: Schema, current: Schema) -> list[str]:
    """Return a human-readable list of incompatibilities (empty when ``current`` is compatible)."""
    checker = _Checker(published.get("$defs", {}), current.get("$defs", {}))
    checker.compare(published, current, "$")
    return checker.problems


class _Checker:
    def __init__(self, old_defs: dict[str, Schema], new_defs: dict[str, Schema]) -> None:
        self.old_defs = old_defs
        self.new_defs = new_defs
        self.problems: list[str] = []
        self._seen: set[tuple[str, str, str]] = set()

    def _resolve(self, schema: Schema, defs: dict[str, Schema]) -> Schema:
        while "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            merged = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**defs.get(name, {}), **merged}
        return schema

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        key = (path, repr(old.get("$ref")), repr(new.get("$ref")))
        if key in self._seen:  # recursive models
            return
        self._seen.add(key)
        old = self._resolve(old, self.old_defs)
        new = self._resolve(new, self.new_defs)
        old_alts = alternatives(old)
        new_alts = [self._resolve(a, self.new_defs) for a in alternatives(new)]
        for alt in old_alts:
            alt = self._resolve(alt, self.old_defs)
            candidates = [n for n in new_alts if _type_accepts(n, alt)]
            if not candidates:
                self.problems.append(f"{path}: {_describe(alt)} is no longer accepted")
                continue
            # Report against the best candidate (the one with the fewest problems).
            best: list[str] | None = None
            for cand in candidates:
                sub = _Checker(self.old_defs, self.new_defs)
                sub._seen = set(self._seen)
                sub._compare_one(alt, cand, path)
                if best is None or len(sub.problems) < len(best):
                    best = sub.problems
                if not sub.problems:
                    break
            self.problems.extend(best or [])

    def _compare_one(self, old: Schema, new: Schema, path: str) -> None:
        for keyword in ("format", "pattern", "const"):
            if keyword in new and new.get(keyword) != old.get(keyword):
                self.problems.append(f"{path}: {keyword} changed from {old.get(keyword)!r} to {new[keyword]!r}")
        if "enum" in new:
            missing = [v for v in old.get("enum", [None]) if v not in new["enum"]] if "enum" in old else ["*"]
            if missing:
                self.problems.append(f"{path}: enum no longer accepts {missing}")
        for bound in _LOWER_BOUNDS:
            if bound in new and (bound not in old or new[bound] > old[bound]):
                self.problems.append(f"{path}: {bound} tightened to {new[bound]}")
        for bound in _UPPER_BOUNDS:
            if bound in new and (bound not in old or new[bound] < old[bound]):
                self.problems.append(f"{path}: {bound} tightened to {new[bound]}")
        if _types(old) & {"object"} or "properties" in old:
            self._compare_object(old, new, path)
        if "array" in _types(old):
            if "items" in old and "items" in new:
                self.compare(old["items"], new["items"], f"{path}[]")
            for i, (o, n) in enumerate(zip(old.get("prefixItems", []), new.get("prefixItems", []), strict=False)):
                self.compare(o, n, f"{path}[{i}]")

    def _compare_object(self, old: Schema, new: Schema, path: str) -> None:
        old_props: dict[str, Schema] = old.get("properties", {})
        new_props: dict[str, Schema] = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        for name in sorted(new_required - old_required):
            self.problems.append(f"{path}.{name}: newly required (old documents lack it)")
        for name in sorted(old_required - new_required):
            self.problems.append(f"{path}.{name}: no longer required (old readers rely on it)")
        for name, old_prop in old_props.items():
            if name in new_props:
                self.compare(old_prop, new_props[name], f"{path}.{name}")
            elif new.get("additionalProperties") is False:
                self.problems.append(f"{path}.{name}: removed, and extra properties are forbidden")
            elif name in old_required:
                pass  # already reported as no longer required
            else:
                self.problems.append(f"{path}.{name}: removed")


def alternatives(schema: Schema) -> list[Schema]:
    """The schemas an ``anyOf``/``oneOf`` allows, each with the keywords beside it (the schema itself when
    it has neither)."""
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            base = {k: v for k, v in schema.items() if k not in (keyword, "default", "title", "description")}
            return [{**base, **alt} for alt in schema[keyword]]
    return [schema]


def _types(schema: Schema) -> set[str]:
    t = schema.get("type")
    if t is None:
        if "properties" in schema:
            return {"object"}
        if "enum" in schema:
            return {type(v).__name__.replace("str", "string").replace("int", "integer") for v in schema["enum"]}
        return set()
    return {t} if isinstance(t, str) else set(t)


def _type_accepts(new: Schema, old: Schema) -> bool:
    new_types, old_types = _types(new), _types(old)
    if not new_types:
        return True
    if not old_types:
        return False
    if "number" in new_types:
        new_types = new_types | {"integer"}
    return old_types <= new_types


def _describe(schema: Schema) -> str:
    return "type " + "/".join(sorted(_types(schema))) if _types(schema) else "any value"
