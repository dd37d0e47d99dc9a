"""`capstan-server`'s hostile-input flags (issue 8): message limits, CORS origins, hosts."""

from __future__ import annotations

import pytest

from capstan_server.limits import DEFAULT_MAX_MESSAGE_BYTES
from capstan_server.main import build_parser


def test_defaults_allow_no_origin_and_any_host() -> None:
    args = build_parser().parse_args([])
    assert args.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    assert (args.cors_allow_origin, args.allowed_host) == ([], [])


def test_origins_and_hosts_repeat() -> None:
    args = build_parser().parse_args([
        "--cors-allow-origin", "https://a.example", "--cors-allow-origin", "https://b.example",
        "--allowed-host", "capstan.example.com", "--max-message-bytes", "1048576",
    ])
    assert args.cors_allow_origin == ["https://a.example", "https://b.example"]
    assert args.allowed_host == ["capstan.example.com"]
    assert args.max_message_bytes == 1048576


@pytest.mark.parametrize("value", ["12", "99999999999", "lots", "-1"])
def test_bad_message_limits_are_usage_errors(value: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--max-message-bytes", value])
    assert exit_.value.code == 2
