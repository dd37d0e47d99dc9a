"""The REST route table, derived from the `google.api.http` annotations of the service protos.

Nothing here knows about a particular RPC: every method of the given services that carries an
`HttpRule` (and each of its `additional_bindings`) becomes one `Route`, and a method without one
is not reachable over REST. Path templates follow google/api/http.proto: literal segments, `*`,
`**`, variables `{field.path}` or `{field.path=segments}`, and an optional `:verb`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

_HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class PathVariable:
    """A `{field.path}` of a template, bound to the aiohttp match name `match_name`."""

    field_path: str
    match_name: str


@dataclass(frozen=True)
class Route:
    """One REST binding of one RPC."""

    http_method: str
    #: The path template as annotated, e.g. `/api/releases/{id}/history`.
    template: str
    #: The same path in aiohttp's router syntax.
    router_path: str
    variables: tuple[PathVariable, ...]
    #: "" (no body), "*" (the whole request message) or the name of one request field.
    body: str
    #: "" (the whole response message) or the name of the response field to answer with.
    response_body: str
    method: MethodDescriptor

    @property
    def grpc_path(self) -> str:
        """The gRPC method path, e.g. `/capstan.v1.ReleaseService/GetRelease`."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def bound_fields(self) -> frozenset[str]:
        """Top-level request fields that the path binds (they cannot come from elsewhere)."""
        return frozenset(v.field_path.split(".", 1)[0] for v in self.variables)


class TemplateError(ValueError):
    """A path template that google/api/http.proto's grammar does not allow."""


def http_rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    """The method's `google.api.http` option, or None when it has none."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return rule


def build_routes(services: Iterable[ServiceDescriptor]) -> list[Route]:
    """Every annotated binding of every method of `services`, in declaration order."""
    routes: list[Route] = []
    for service in services:
        for method in service.methods:
            rule = http_rule(method)
            if rule is None:
                continue
            for binding in (rule, *rule.additional_bindings):
                routes.append(_route(method, binding))
    return routes


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern in _HTTP_METHODS:
        http_method, template = pattern.upper(), str(getattr(rule, pattern))
    elif pattern == "custom":
        http_method, template = rule.custom.kind.upper(), rule.custom.path
    else:
        raise TemplateError(f"{method.full_name}: google.api.http rule without a path")
    router_path, variables = parse_template(template)
    return Route(
        http_method=http_method,
        template=template,
        router_path=router_path,
        variables=variables,
        body=rule.body,
        response_body=rule.response_body,
        method=method,
    )


_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^}]*))?\}")


def parse_template(template: str) -> tuple[str, tuple[PathVariable, ...]]:
    """Translate a google.api.http path template into an aiohttp router path."""
    if not template.startswith("/"):
        raise TemplateError(f"path template must start with '/': {template!r}")
    path, verb = _split_verb(template)
    variables: list[PathVariable] = []
    out: list[str] = []
    pos = 0
    for match in _VARIABLE.finditer(path):
        out.append(_literal_segments(path[pos : match.start()], len(variables)))
        field_path, segments = match.group(1), match.group(2) or "*"
        name = field_path.replace(".", "__")
        variables.append(PathVariable(field_path=field_path, match_name=name))
        out.append(f"{{{name}:{_segments_regex(segments)}}}")
        pos = match.end()
    out.append(_literal_segments(path[pos:], len(variables)))
    return "".join(out) + (f":{verb}" if verb else ""), tuple(variables)


def _split_verb(template: str) -> tuple[str, str]:
    # A `:verb` follows the last segment, outside any `{...}`.
    last = template.rsplit("/", 1)[-1]
    if ":" in last and "}" not in last.split(":", 1)[1]:
        head, verb = template.rsplit(":", 1)
        return head, verb
    return template, ""


def _literal_segments(text: str, index: int) -> str:
    """Literal path text; bare `*`/`**` wildcards match without binding a field."""
    if "{" in text or "}" in text:
        raise TemplateError(f"malformed variable near {text!r}")
    parts = text.split("/")
    for i, part in enumerate(parts):
        if part == "*":
            parts[i] = f"{{_wildcard{index}_{i}:[^/]+}}"
        elif part == "**":
            parts[i] = f"{{_wildcard{index}_{i}:.+}}"
    return "/".join(parts)


def _segments_regex(segments: str) -> str:
    """The regex for a variable's segments, e.g. `*` or `releases/*`."""
    pieces = []
    for segment in segments.split("/"):
        if segment == "*":
            pieces.append("[^/]+")
        elif segment == "**":
            pieces.append(".+")
        else:
            pieces.append(re.escape(segment))
    return "/".join(pieces)
