"""`-f/--values` files are read and checked on the client: a bad one is reported with its path
and line, exit code 2, and nothing is sent; good ones are sent as one YAML text, in order."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from client.fake_capstan import FakeCapstan

from capstan.cli.values_files import ValuesFileError, read_values_files

from .runner import capstan


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


BAD_FILES = {
    "bad-yaml.yaml": ("image:\n  tag: [unclosed\nreplicaCount: 1\n", "line 3"),
    "tabs.yaml": ("image:\n\ttag: x\n", "line 2"),
    "list.yaml": ("- image\n- tag\n", "top level is a list, not a mapping of values"),
    "scalar.yaml": ("just a string\n", "top level is a scalar, not a mapping of values"),
    "two-docs.yaml": (
        "a: 1\n---\nb: 2\n",
        "line 2: expected a single document in the stream, but found another document",
    ),
    "python-tag.yaml": ("a: !!python/object:os.system x\n", "line 1"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["create", "upgrade"])
def test_a_bad_file_is_reported_before_anything_is_sent(
    fake: FakeCapstan, tmp_path: Path, name: str, command: str
) -> None:
    text, expected = BAD_FILES[name]
    good = write(tmp_path, "good.yaml", "replicaCount: 3\n")
    bad = write(tmp_path, name, text)
    if command == "create":
        argv = ["k8s-release-create", "-f", good, "--values", bad, "bitnami-new/etcd"]
    else:
        argv = ["k8s-release-upgrade", "-f", good, "-f", bad, "etcd-release", "bitnami-new/etcd"]

    result = capstan(fake.target, *argv)

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: values file {bad}")
    assert expected in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert fake.requests == []


def test_a_missing_file_is_reported_before_anything_is_sent(
    fake: FakeCapstan, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.yaml")

    result = capstan(fake.target, "k8s-release-create", "-f", missing, "bitnami-new/etcd")

    assert result.code == 2
    assert result.stderr == f"Error: values file {missing}: no such file\n"
    assert fake.requests == []


def test_a_directory_is_not_a_values_file(fake: FakeCapstan, tmp_path: Path) -> None:
    result = capstan(fake.target, "k8s-release-create", "-f", str(tmp_path), "bitnami-new/etcd")

    assert result.code == 2
    assert "is a directory" in result.stderr
    assert fake.requests == []


def test_good_files_are_sent_as_one_yaml_text_in_order(fake: FakeCapstan, tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", 'image:\n  tag: "3.5.8-debian-11-r9"\n')
    empty = write(tmp_path, "empty.yaml", "# nothing here\n")
    explicit = write(tmp_path, "b.yaml", "---\nreplicaCount: 3")
    last = write(tmp_path, "c.yaml", "image:\n  tag: last\n")

    result = capstan(
        fake.target, "k8s-release-upgrade", "-f", first, "-f", empty, "-f", explicit,
        "-f", last, "etcd-release", "bitnami-new/etcd",
    )

    assert result.code == 0, result.stderr
    (request,) = fake.received("UpgradeRelease")
    assert list(yaml.safe_load_all(request.values)) == [
        {"image": {"tag": "3.5.8-debian-11-r9"}},
        {"replicaCount": 3},
        {"image": {"tag": "last"}},
    ]
    # The files' own text is sent, not a re-serialisation of it.
    assert request.values.startswith('image:\n  tag: "3.5.8-debian-11-r9"\n---\n')


def test_no_files_send_no_values(fake: FakeCapstan) -> None:
    assert capstan(fake.target, "k8s-release-create", "bitnami-new/etcd").code == 0

    (request,) = fake.received("CreateRelease")
    assert request.values == ""


def test_dash_reads_standard_input() -> None:
    assert read_values_files(["-"], io.StringIO("a: 1\n")) == "a: 1\n"


def test_the_error_names_the_file_and_line() -> None:
    with pytest.raises(ValuesFileError) as raised:
        read_values_files(["-"], io.StringIO("a: 1\nb: [\n"))

    assert raised.value.path == "-"
    assert raised.value.line == 3
