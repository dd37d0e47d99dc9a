"""Secret values never leave through the API: the one place that blanks them.

A Secret's `data` (base64) and `stringData` (plain) values are replaced by their sizes, as
`kubectl describe secret` shows them; its keys stay. This applies to live objects in
`Release.resources` and to the Secret documents of every manifest the API returns (show with
`details`, dry runs). A release's notes (NOTES.txt, which some charts use to print the
password they generated) have every value of the manifest's Secrets blanked too. A release's
`config` (the values its users supplied) is not touched: it is shown to them as
`helm get values` shows it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from capstan_server.errors import InvalidArgument
from capstan_server.values import load_yaml

__all__ = ["is_secret", "redact_manifest", "redact_object", "redact_text", "secret_sizes"]

#: The annotation kubectl apply writes holds the whole object, values included.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: A helm manifest is documents separated by `---` lines.
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_KIND_SECRET = re.compile(r"kind:\s*[\"']?Secret\b")
#: Secret values shorter than this are left in free text: "true", "admin" or a port number
#: are in any chart's notes, and blanking them would say nothing about a secret.
_MIN_TEXT_SECRET = 6


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion", "v1")) == "v1"


def _size(value: Any, encoded: bool) -> int:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if encoded:
        try:
            return len(base64.b64decode(text, validate=False))
        except (binascii.Error, ValueError):
            return len(text)
    return len(text.encode())


def secret_sizes(obj: Mapping[str, Any]) -> dict[str, int]:
    """Each key of a Secret's `data` and `stringData` with the size of its value in bytes."""
    sizes: dict[str, int] = {}
    for field, encoded in (("data", True), ("stringData", False)):
        values = obj.get(field)
        if isinstance(values, Mapping):
            for key, value in values.items():
                sizes[str(key)] = _size(value, encoded)
    return sizes


def redact_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj`; for a Secret, its values replaced by `<redacted: N bytes>`."""
    shown = dict(obj)
    if not is_secret(obj):
        return shown
    for field, encoded in (("data", True), ("stringData", False)):
        values = obj.get(field)
        if isinstance(values, Mapping):
            shown[field] = {str(k): f"<redacted: {_size(v, encoded)} bytes>"
                            for k, v in values.items()}
        elif field in shown:
            shown[field] = "<redacted>"
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        annotations = metadata.get("annotations")
        if isinstance(annotations, Mapping) and _LAST_APPLIED in annotations:
            shown["metadata"] = {**metadata, "annotations": {
                k: ("<redacted>" if k == _LAST_APPLIED else v) for k, v in annotations.items()}}
    return shown


def redact_manifest(manifest: str) -> str:
    """`manifest` with every Secret document's values redacted; other documents unchanged.

    A redacted document is written again as YAML after its comment lines (`# Source: ...`);
    a document that looks like a Secret but cannot be parsed is replaced by a comment.
    """
    if "Secret" not in manifest:
        return manifest
    parts = _SEPARATOR.split(manifest)
    return "---".join(_redact_document(part) for part in parts)


def redact_text(text: str, manifest: str) -> str:
    """`text` (a release's notes) with every value of `manifest`'s Secrets, plain or in its
    base64 form, replaced by `<redacted>`; the longest first, so no part of one survives."""
    if not text or "Secret" not in manifest:
        return text
    values: set[str] = set()
    for part in _SEPARATOR.split(manifest):
        if "Secret" not in part:
            continue
        try:
            docs = load_yaml(part, what="manifest document")
        except InvalidArgument:
            continue
        for doc in docs:
            _collect_values(doc, values)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= _MIN_TEXT_SECRET:
            text = text.replace(value, "<redacted>")
    return text


def _collect_values(doc: Any, into: set[str]) -> None:
    if not isinstance(doc, Mapping):
        return
    items = doc.get("items")
    if isinstance(items, list) and not is_secret(doc):
        for item in items:
            _collect_values(item, into)
        return
    if not is_secret(doc):
        return
    for field, encoded in (("data", True), ("stringData", False)):
        values = doc.get(field)
        if not isinstance(values, Mapping):
            continue
        for value in values.values():
            if not isinstance(value, str):
                continue
            into.add(value)
            if encoded:
                with contextlib.suppress(binascii.Error, ValueError):
                    into.add(base64.b64decode(value, validate=True).decode())
            else:
                into.add(base64.b64encode(value.encode()).decode())


def _has_secret(doc: Any) -> bool:
    if not isinstance(doc, Mapping):
        return False
    items = doc.get("items")
    return is_secret(doc) or (isinstance(items, list) and any(_has_secret(i) for i in items))


def _redact_tree(doc: Any) -> Any:
    if not isinstance(doc, Mapping):
        return doc
    items = doc.get("items")
    if isinstance(items, list) and not is_secret(doc):
        return {**doc, "items": [_redact_tree(item) for item in items]}
    return redact_object(doc)


def _redact_document(text: str) -> str:
    if "Secret" not in text:
        return text
    comments = "".join(line + "\n" for line in text.lstrip("\n").splitlines()
                       if line.startswith("#"))
    try:
        docs = load_yaml(text, what="manifest document")
    except InvalidArgument:
        if _KIND_SECRET.search(text):
            return f"\n{comments}# (a Secret document that could not be parsed; not shown)\n"
        return text
    if not any(_has_secret(doc) for doc in docs):
        return text
    body = yaml.safe_dump_all([_redact_tree(doc) for doc in docs], default_flow_style=False,
                              sort_keys=False, allow_unicode=True)
    return f"\n{comments}{body}"
