"""``POST /api/v1/namespaces/<ns>/bindings``: what a scheduler does to put a Pod on a node.

A Binding is never stored: it sets the named Pod's ``spec.nodeName`` once (a Pod already bound
answers 409, as the API server does).
"""

from __future__ import annotations

from .errors import BadRequest, Conflict
from .objects import Obj
from .store import Store

BINDINGS = ("", "bindings")


def bind(store: Store, binding: Obj, namespace: str | None) -> None:
    """Bind the Pod ``binding.metadata.name`` to the node ``binding.target.name``."""
    name = str((binding.get("metadata") or {}).get("name") or "")
    target = binding.get("target") or {}
    node = str(target.get("name") or "") if isinstance(target, dict) else ""
    if not name or not node:
        raise BadRequest("a Binding needs metadata.name (the pod) and target.name (the node)")
    pods = store.resolve("pods")

    def set_node(pod: Obj) -> None:
        spec = pod.setdefault("spec", {})
        current = spec.get("nodeName")
        if current:
            raise Conflict(pods, name, f"pod {name} is already assigned to node {current!r}")
        spec["nodeName"] = node

    store.modify(pods, name, set_node, namespace)
