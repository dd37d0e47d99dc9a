"""Responses as JSON: the exact shape the REST gateway answers with."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["to_dict"]


def to_dict(message: Message) -> dict[str, Any]:
    """`message` as the REST gateway writes it: snake_case names, default values included.

    (The gateway answers GetReleaseHistory with the bare `revisions` array:
    `to_dict(response)["revisions"]`.)
    """
    result: dict[str, Any] = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return result
