"""The polyglot reference filter in Python: a component of the world
kwex:filter@1.0.0 (guest-sdk/wit/filter.wit), built with componentize-py.
See ../README.md for the behaviour."""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import RouteTarget, Verdict_Drop, Verdict_Keep, Verdict_Route

KEEP = Verdict_Keep()
DROP = Verdict_Drop()

# namespace -> Verdict_Route. Module state: componentize-py makes a new
# WitWorld object for every call, so state kept on `self` would be lost.
_routes = {}


def _no_constant(name):
    # Python's json takes NaN and Infinity, which are not JSON: refuse them.
    raise ValueError(f"{name} is not JSON")


def _parse(text):
    """The JSON value, or raises ValueError (RecursionError for deep nesting)."""
    return json.loads(text, parse_constant=_no_constant)


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global _routes
        _routes = {}
        try:
            value = _parse(config)
        except (ValueError, RecursionError):
            raise Err("config: not valid JSON")
        if value is None:
            return
        if not isinstance(value, dict):
            raise Err("config: expected a JSON object or null")
        if "routes" not in value:
            return
        table = value["routes"]
        if not isinstance(table, dict):
            raise Err('config: "routes" must be an object mapping namespaces to index names')
        routes = {}
        for ns, index in table.items():
            if not isinstance(index, str):
                raise Err(f'config: the index for namespace "{ns}" must be a string')
            routes[ns] = Verdict_Route(RouteTarget(index=index, document=None))
        _routes = routes

    def filter(self, document: str):
        try:
            doc = _parse(document)
        except (ValueError, RecursionError):
            raise Err("document: not valid JSON")
        if not isinstance(doc, dict):
            raise Err("document: not a JSON object")
        if doc.get("type") != "Warning":
            return DROP
        metadata = doc.get("metadata")
        ns = metadata.get("namespace") if isinstance(metadata, dict) else None
        if isinstance(ns, str) and ns in _routes:
            return _routes[ns]
        return KEEP
