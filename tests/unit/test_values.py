"""Values: the one YAML loader, Helm's merge and coalesce rules, reuse/reset, and the schema."""

from __future__ import annotations

import time
from typing import Any

import pytest

from capstan_server.errors import InvalidArgument
from capstan_server.values import (
    coalesce,
    load_yaml,
    merge_values,
    parse_values,
    upgrade_config,
    user_values,
)

# -- loading ----------------------------------------------------------------------------------


def test_documents_merge_in_order_like_repeated_f_files() -> None:
    text = (
        "image:\n  tag: r8\n  repository: bitnami/etcd\nreplicaCount: 1\n---\nimage:\n  tag: r9\n"
    )
    assert parse_values(text) == {
        "image": {"tag": "r9", "repository": "bitnami/etcd"},
        "replicaCount": 1,
    }


def test_empty_text_and_empty_documents_are_no_values() -> None:
    assert parse_values("") == {}
    assert parse_values("  \n# only a comment\n") == {}
    assert parse_values("---\n---\na: 1\n") == {"a": 1}


def test_json_values_are_laid_over_yaml_values() -> None:
    merged = user_values("image:\n  tag: r8\n  pullPolicy: Always\n", {"image": {"tag": "r9"}})
    assert merged == {"image": {"tag": "r9", "pullPolicy": "Always"}}


def test_yaml_is_read_as_helm_reads_it() -> None:
    docs = load_yaml("when: 2023-05-10\n1: one\nnothing: ~\n---\ntrue: yes\n")
    # Timestamps stay strings; keys become strings, spelled as JSON spells them.
    assert docs == [{"when": "2023-05-10", "1": "one", "nothing": None}, {"true": True}]


def test_invalid_yaml_points_at_document_and_line() -> None:
    text = "a: 1\n---\nimage:\n  tag: [unclosed\n"
    with pytest.raises(InvalidArgument) as err:
        parse_values(text)
    assert "document 2" in err.value.message
    assert "line" in err.value.message
    detail = err.value.details[0]
    assert detail["document"] == 2
    assert detail["line"] in (2, 3)  # the line of the problem within document 2


def test_a_first_document_error_counts_lines_from_the_top() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_values("a: 1\nb: : 2\n")
    assert err.value.details[0]["document"] == 1
    assert err.value.details[0]["line"] == 2


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just text\n", "a str"), ("a: 1\n---\n42\n", "a int")],
)
def test_a_top_level_that_is_not_a_mapping_is_refused(text: str, kind: str) -> None:
    with pytest.raises(InvalidArgument, match=f"is {kind}, not a mapping"):
        parse_values(text)


def test_alias_bombs_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    with pytest.raises(InvalidArgument, match="too large"):
        parse_values(bomb)


# -- merging and coalescing ---------------------------------------------------------------------


def test_merge_keeps_nulls_and_replaces_non_maps() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge_values(base, {"a": {"c": [3], "e": None}, "d": {"x": 1}}) == {
        "a": {"b": 1, "c": [3], "e": None},
        "d": {"x": 1},
    }
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs untouched


def test_coalesce_user_values_over_chart_defaults() -> None:
    defaults = {
        "image": {"tag": "r8", "registry": "docker.io"},
        "replicaCount": 1,
        "auth": {"x": 1},
    }
    user = {"image": {"tag": "r9"}, "auth": None, "extra": None}
    assert coalesce(defaults, user) == {
        "image": {"tag": "r9", "registry": "docker.io"},
        "replicaCount": 1,
        # `auth: null` deleted the chart's key; a null for an unknown key stays.
        "extra": None,
    }


def test_coalesce_nested_null_deletes_a_default() -> None:
    defaults = {"image": {"tag": "r8", "digest": "sha"}}
    assert coalesce(defaults, {"image": {"digest": None}}) == {"image": {"tag": "r8"}}


def test_coalesce_lets_a_user_scalar_replace_a_default_map() -> None:
    assert coalesce({"a": {"b": 1}}, {"a": "flat"}) == {"a": "flat"}
    assert coalesce({"a": "flat"}, {"a": {"b": 1}}) == {"a": {"b": 1}}


# -- reuse / reset ------------------------------------------------------------------------------

PREVIOUS = {"image": {"tag": "r9"}, "replicaCount": 3}


@pytest.mark.parametrize(
    ("new", "reuse", "reset", "expected"),
    [
        ({}, False, False, PREVIOUS),  # neither flag, no new values: keep the previous config
        ({"replicaCount": 5}, False, False, {"replicaCount": 5}),  # new values replace
        ({"replicaCount": 5}, True, False, {"image": {"tag": "r9"}, "replicaCount": 5}),
        ({"image": {"tag": None}}, True, False, {"image": {}, "replicaCount": 3}),
        ({"replicaCount": 5}, True, True, {"replicaCount": 5}),  # reset wins over reuse
        ({}, False, True, {}),  # reset with nothing new: chart defaults only
        ({}, True, False, PREVIOUS),
    ],
)
def test_upgrade_config_follows_helm(
    new: dict[str, Any], reuse: bool, reset: bool, expected: dict[str, Any]
) -> None:
    assert upgrade_config(PREVIOUS, new, reuse=reuse, reset=reset) == expected
    assert PREVIOUS == {"image": {"tag": "r9"}, "replicaCount": 3}


# -- hostile YAML: a budget on the expanded size, not only on the text -------------------------


def _alias_bomb(levels: int = 6, width: int = 9) -> str:
    """350-odd bytes that expand to width**levels strings ("billion laughs")."""
    text = "a0: &a0 [" + ",".join(['"lol"'] * width) + "]\n"
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * width)
        text += f"a{level}: &a{level} [{refs}]\n"
    return text


def test_an_alias_bomb_is_refused_quickly() -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 400
    started = time.perf_counter()
    with pytest.raises(InvalidArgument, match="aliases are expanded"):
        parse_values(bomb)
    assert time.perf_counter() - started < 1.0  # it took 10-16 s, answering 4.3 MB


def test_aliases_of_a_long_string_count_too() -> None:
    text = "a: &a " + "x" * 100_000 + "\nb: [" + ",".join(["*a"] * 20) + "]\n"
    with pytest.raises(InvalidArgument, match="aliases are expanded"):
        load_yaml(text, max_alias_bytes=1_000_000)


def test_ordinary_aliases_are_fine() -> None:
    text = "base: &base {image: nginx, tag: '1.2'}\nweb: *base\napi: *base\n"
    assert parse_values(text)["api"] == {"image": "nginx", "tag": "1.2"}
    assert parse_values(_alias_bomb(levels=3))["a2"][0][0] == ["lol"] * 9


def test_recursive_aliases_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="recursive alias"):
        load_yaml("a: &a [*a]\n")


def test_values_nesting_is_bounded() -> None:
    from capstan_server.limits import MAX_JSON_DEPTH, MAX_YAML_DEPTH

    def nested(levels: int) -> str:
        return "".join(" " * i + f"k{i}:\n" for i in range(levels - 1)) + " " * levels + "x: 1\n"

    assert parse_values(nested(MAX_JSON_DEPTH))
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        parse_values(nested(MAX_JSON_DEPTH + 1))
    # Other YAML (charts' CRD schemas) may nest deeper, but not without bound.
    assert load_yaml(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        load_yaml("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1))


def test_expanded_nodes_are_bounded() -> None:
    with pytest.raises(InvalidArgument, match="too many nodes"):
        load_yaml("[" + ",".join(["1"] * 1000) + "]", max_nodes=500)
