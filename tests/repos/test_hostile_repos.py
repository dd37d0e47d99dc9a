"""Issue 15, row by row: a malicious chart repository (served by the test on 127.0.0.1) gets a
4xx (503 when it is merely unreachable) in bounded time, /healthz keeps answering meanwhile, and
nothing is written outside the data dir or left in the archive cache.

Attack sizes are shrunk to what still proves each bound; the Capstan server runs the memory
driver; row 9 (helm limits) runs on the real helm in `test_hostile_helm.py` (and, per major, in
tests/drivers/helm/test_helm_limits.py).
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from capstan_server.charts.limits import MiB
from capstan_server.threaded import ServerHandle
from repos.harness import LIMITS, Rest, attack, benign_chart, serve_chart
from repos.hostile_repo import (
    CHART_YAML,
    HostileRepo,
    RawTcpServer,
    body,
    drip,
    endless,
    entry,
    gzip_bomb,
    raw_tgz,
    redirect,
    sha256,
    tar_header,
    tgz,
)


@pytest.fixture
def capstan(capstan_server_factory: Callable[..., ServerHandle]) -> ServerHandle:
    return capstan_server_factory(repo_limits=LIMITS)


@pytest.fixture
def rest(capstan: ServerHandle, fake_kubeconfig: str) -> Rest:
    rest = Rest(capstan.http_url)
    status, _ = rest.call("POST", "/api/clusters", {"name": "test122",
                                                    "kubeconfig": fake_kubeconfig})
    assert status == 200
    return rest


# -- row 1: $ref to files and URLs ------------------------------------------------------------


@pytest.mark.parametrize("ref", ["file:///etc/passwd#/nope", "SECRET_URL"])
def test_row1_schema_refs_outside_the_document_are_refused(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, ref: str
) -> None:
    hostile.route("/secret.json", body(b'{"token": "SECRET-TOKEN"}'))
    ref = ref.replace("SECRET_URL", hostile.url + "/secret.json")
    schema = json.dumps({"properties": {"a": {"$ref": ref}}}).encode()
    serve_chart(hostile, tgz({"evil/Chart.yaml": CHART_YAML, "evil/values.schema.json": schema}))
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan, cached=1):  # the archive is sound; its schema is the attack
        status, answer = rest.install("evil")
    assert status == 400 and ref in answer["message"]
    assert "SECRET-TOKEN" not in json.dumps(answer) and "root:" not in json.dumps(answer)
    assert "/secret.json" not in hostile.requests
    assert rest.call("GET", "/api/releases/victim")[0] == 404


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "nested-tgz"])
def test_row1_subchart_schema_refs_are_refused_before_helm_sees_them(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, packed: bool
) -> None:
    # helm validates subcharts' schemas too, and would follow the ref itself.
    schema = json.dumps({"$ref": "http://169.254.169.254/latest/meta-data/"}).encode()
    sub = {"sub/Chart.yaml": b"name: sub\nversion: 1.0.0\n", "sub/values.schema.json": schema}
    if packed:
        inner = tgz({"deep/Chart.yaml": b"name: deep\nversion: 1.0.0\n",
                     "deep/values.schema.json": schema})
        sub = {"sub/Chart.yaml": sub["sub/Chart.yaml"], "sub/charts/deep-1.0.0.tgz": inner}
        members = {"evil/Chart.yaml": CHART_YAML, "evil/charts/sub-1.0.0.tgz": tgz(sub)}
    else:
        members = {"evil/Chart.yaml": CHART_YAML, **{f"evil/charts/{k}": v for k, v in sub.items()}}
    serve_chart(hostile, tgz(members))
    assert rest.register("evil", hostile.url)[0] == 200
    status, answer = rest.install("evil")
    assert status == 400 and "169.254.169.254" in answer["message"]


# -- row 2: compressed index bombs --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_row2_an_index_that_inflates_past_the_cap_is_refused_while_inflating(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, encoding: str
) -> None:
    bomb = gzip_bomb(64 * MiB, prefix=b"apiVersion: v1\nentries: {}\n#")
    if encoding == "deflate":
        bomb = zlib.compress(gzip.decompress(bomb), 9)
    hostile.index(bomb, **{"Content-Encoding": encoding})
    with attack(capstan):
        status, answer = rest.register("bomb", hostile.url)
    assert status == 400 and "larger than" in answer["message"]
    assert rest.call("GET", "/api/repos")[1]["total"] == 0


# -- row 3: digests as paths, digests of other repositories ----------------------------------


@pytest.mark.parametrize("digest", ["../../../../etc/x", "/etc/passwd", "sha256:xyz", "g" * 64])
def test_row3_a_digest_that_is_not_sha256_is_refused_without_a_request(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, digest: str
) -> None:
    hostile.index({"evil": [entry("evil", "1.0.0", digest=digest, urls=["nowhere.tgz"])]})
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status in (400, 409) and "sha256" in answer["message"]
    assert "/nowhere.tgz" not in hostile.requests


def test_row3_another_repositorys_digest_serves_nothing_of_it(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    with HostileRepo() as victim:
        digest = benign_chart(victim, "private", values_yaml=b"password: hunter2\n")
        victim.index({"private": [entry("private", "1.0.0", digest=digest)]})
        assert rest.register("victim", victim.url)[0] == 200
        assert rest.show("victim", "private")[0] == 200  # now in the victim's cache
        hostile.index({"private": [entry("private", "1.0.0", digest=digest,
                                          urls=["bogus.tgz"])]})
        assert rest.register("evil", hostile.url)[0] == 200
        status, answer = rest.show("evil", "private")
    assert status == 409 and "hunter2" not in json.dumps(answer)
    assert "/bogus.tgz" in hostile.requests  # it had to download its own


# -- row 4: archive bombs ------------------------------------------------------------------------


def _entries(count: int) -> Iterator[bytes]:
    yield tar_header(b"evil/Chart.yaml", len(CHART_YAML)) + CHART_YAML.ljust(512, b"\x00")
    for i in range(count):
        yield tar_header(f"evil/f{i}".encode(), 0)


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (lambda: raw_tgz(_entries(30_000)), "more than 10000 entries"),
        (lambda: raw_tgz(tar_header(b"././@PaxHeader", 2 << 30, b"x")), "extended header"),
        (lambda: raw_tgz(tar_header(b"././@LongLink", 2 << 30, b"L")), "extended header"),
        (lambda: raw_tgz(tar_header(b"././@PaxHeader", 431, b"x") + b"1" * 431 + bytes(81)),
         "PAX header is corrupt"),
    ],
    ids=["many-entries", "pax-2GiB", "longname-2GiB", "pax-digits-cve-2024-6232"],
)
def test_row4_archive_bombs_are_refused_before_anything_is_built(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo,
    archive: Callable[[], bytes], message: str,
) -> None:
    serve_chart(hostile, archive())
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status == 409 and message in answer["message"]


# -- row 5: endless archives, archives without a digest ----------------------------------------


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "slow"])
def test_row5_an_endless_archive_is_given_up_and_its_part_removed(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, fast: bool
) -> None:
    # Fast: stopped at the size cap; slow: at the minimum rate (or the deadline).
    hostile.route("/evil-1.0.0.tgz",
                  endless() if fast else drip(b"", per_second=100, forever=True))
    hostile.index({"evil": [entry("evil", "1.0.0", digest="0" * 64)]})
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status in (409, 503), answer


def test_row5_an_archive_without_digest_is_never_written(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    benign_chart(hostile)
    hostile.index({"evil": [entry("evil", "1.0.0")]})
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status == 409 and "no digest" in answer["message"]
    assert "/evil-1.0.0.tgz" not in hostile.requests


# -- row 6: the in-memory caches stay under their budget ----------------------------------------


def test_row6_chart_files_in_memory_stay_under_the_budget(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    entries = {}
    for i in range(6):  # 6 charts of ~0.9 MB of values each (~3.6 MB parsed), budget 8 MiB
        name = f"big{i}"
        values = b"k: " + b"x" * 900_000 + b"\n"
        digest = benign_chart(hostile, name, values_yaml=values)
        entries[name] = [entry(name, "1.0.0", digest=digest)]
    hostile.index(entries)
    assert rest.register("big", hostile.url)[0] == 200
    for name in entries:
        assert rest.show("big", name)[0] == 200
    files = capstan.server.services.catalog._files
    assert files.used <= LIMITS.chart_cache_bytes and 0 < len(files) < len(entries)


# -- row 7: drips cannot take the pool -----------------------------------------------------------


def test_row7_a_dripping_repository_cannot_starve_another(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    hostile.route("/evil-1.0.0.tgz", drip(b"\x1f" * 10_000, per_second=1))
    hostile.index({"evil": [entry("evil", "1.0.0", digest="0" * 64)]})
    assert rest.register("evil", hostile.url)[0] == 200
    with HostileRepo() as other:
        digest = benign_chart(other, "fine")
        other.index({"fine": [entry("fine", "1.0.0", digest=digest)]})
        assert rest.register("other", other.url)[0] == 200
        with attack(capstan, cached=1), ThreadPoolExecutor(12) as pool:  # the benign chart
            drips = [pool.submit(rest.show, "evil") for _ in range(10)]
            time.sleep(0.5)
            started = time.monotonic()
            assert rest.show("other", "fine")[0] == 200
            assert rest.call("POST", "/api/repos/other/sync")[0] == 200
            assert time.monotonic() - started < 5
            assert {d.result()[0] for d in drips} <= {409, 503}


# -- row 8: catastrophic patterns ------------------------------------------------------------------


def test_row8_a_catastrophic_pattern_does_not_freeze_the_server(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    schema = json.dumps({"properties": {"a": {"type": "string", "pattern": "^(a|aa)+$"}}})
    serve_chart(hostile, tgz({"evil/Chart.yaml": CHART_YAML,
                              "evil/values.yaml": b"a: " + b"a" * 200 + b"!\n",
                              "evil/values.schema.json": schema.encode()}))
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan, cached=1):  # the archive is sound; its schema is the attack
        status, answer = rest.install("evil")
    assert status == 400 and "does not match" in answer["message"]


# -- row 10: two-faced archives --------------------------------------------------------------------


@pytest.mark.parametrize(
    "members",
    [
        {"evil/Chart.yaml": CHART_YAML, "evil/values.yaml": b"image: benign\n",
         "twin/values.yaml": b"image: evil.example.net/miner\n"},
        {"evil/Chart.yaml": CHART_YAML, "evil/values.yaml": b"image: benign\n",
         "evil/./values.yaml": b"image: evil.example.net/miner\n"},
    ],
    ids=["two-top-level-dirs", "duplicate-entry"],
)
def test_row10_an_archive_with_two_faces_is_refused(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, members: dict[str, bytes]
) -> None:
    serve_chart(hostile, tgz(members))
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status == 409 and ("top-level" in answer["message"] or "twice" in answer["message"])


# -- row 11: internal addresses --------------------------------------------------------------


@pytest.fixture
def strict(capstan_server_factory: Callable[..., ServerHandle]) -> Rest:
    """A server that allows no internal host at all (the production default)."""
    return Rest(capstan_server_factory(repo_limits=LIMITS, allow_repo_hosts=()).http_url)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest", "http://127.0.0.1:{port}", "http://localhost:{port}",
     "http://[::1]:{port}", "http://0.0.0.0:{port}", "http://[::ffff:127.0.0.1]:{port}",
     "http://127.0.0.2:{port}"],
)
def test_row11_internal_repository_urls_are_refused(
    strict: Rest, hostile: HostileRepo, url: str
) -> None:
    hostile.index({})
    status, answer = strict.register("internal", url.format(port=hostile.port))
    assert status == 400 and "--allow-repo-host" in answer["message"], answer
    assert hostile.requests == []


def test_row11_redirects_and_index_urls_to_internal_addresses_are_refused(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    # 127.0.0.1 is allowed for this server (the test repository lives there), 127.0.0.2 not.
    hostile.route("/moved/index.yaml", redirect(f"http://127.0.0.2:{hostile.port}/index.yaml"))
    status, answer = rest.register("moved", hostile.url + "/moved")
    assert status == 400 and "redirects to a host" in answer["message"]
    for url in [f"http://127.0.0.2:{hostile.port}/evil.tgz", "http://169.254.169.254/x.tgz",
                "file:///etc/passwd"]:
        hostile.index({"evil": [entry("evil", "1.0.0", digest="0" * 64, urls=[url])]})
        rest.call("DELETE", "/api/repos/evil?force=true")
        assert rest.register("evil", hostile.url)[0] == 200
        with attack(capstan):
            status, answer = rest.show("evil")
        assert status == 409, answer
    assert "/evil.tgz" not in hostile.requests


def test_row11_a_non_http_service_is_never_echoed(
    capstan: ServerHandle, rest: Rest
) -> None:
    with RawTcpServer(b"SSH-2.0-OpenSSH token=SECRET-TOKEN\r\n") as raw:
        status, answer = rest.register("raw", f"http://127.0.0.1:{raw.port}")
    assert status == 503 and "SECRET-TOKEN" not in json.dumps(answer), answer


def test_row11_a_digest_mismatch_does_not_tell_what_was_fetched(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    hostile.archive("evil-1.0.0.tgz", b"anything")
    hostile.index({"evil": [entry("evil", "1.0.0", digest="0" * 64)]})
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status == 409 and sha256(b"anything") not in json.dumps(answer)


# -- row 12: odd entries, deep YAML, bad ports, alias bombs ------------------------------------


def test_row12_a_parent_directory_entry_is_a_4xx(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    serve_chart(hostile, tgz({"evil/Chart.yaml": CHART_YAML, "evil/../../x": b"x"}))
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status == 409 and "parent directory" in answer["message"]


@pytest.mark.parametrize(
    "index",
    [
        b"apiVersion: v1\nentries:\n  deep: " + b"[" * 500 + b"]" * 500 + b"\n",
        b"apiVersion: v1\nentries: {}\n"
        + b"a: &a [" + b",".join([b"x"] * 9) + b"]\n"
        + b"".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode()
                   for p, c in zip("abcdefg", "bcdefgh", strict=True)),
    ],
    ids=["nested-500", "alias-bomb"],
)
def test_row12_deep_or_exploding_index_yaml_is_a_4xx_at_once(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo, index: bytes
) -> None:
    hostile.index(index)
    with attack(capstan, bound_s=10):
        status, answer = rest.register("yaml", hostile.url)
    assert status == 400, answer


def test_row12_a_url_port_above_65535_is_a_4xx(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    assert rest.register("port", "http://127.0.0.1:99999")[0] == 400
    hostile.index({"evil": [entry("evil", "1.0.0", digest="0" * 64,
                                  urls=["http://127.0.0.1:70000/evil.tgz"])]})
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, _ = rest.show("evil")
    assert status == 409



def test_row12_urls_that_do_not_parse_are_a_4xx(
    capstan: ServerHandle, rest: Rest, hostile: HostileRepo
) -> None:
    hostile.route("/moved/index.yaml", redirect("http://[::1/index.yaml"))
    status, answer = rest.register("moved", hostile.url + "/moved")
    assert status == 400 and "not a valid http(s) URL" in answer["message"], answer
    hostile.index({"evil": [entry("evil", "1.0.0", digest="0" * 64,
                                  urls=["http://[::1/evil.tgz"])]})
    assert rest.register("evil", hostile.url)[0] == 200
    with attack(capstan):
        status, answer = rest.show("evil")
    assert status == 409, answer


def test_row12_a_registry_naming_urls_that_do_not_parse_is_a_4xx(
    rest: Rest, hostile: HostileRepo
) -> None:
    oci = f"oci://127.0.0.1:{hostile.port}/charts"

    def register() -> tuple[int, Any]:
        return rest.call("POST", "/api/repos", {"name": "reg", "url": oci, "plain_http": True,
                                                "charts": ["evil"]})

    challenge = 'Bearer realm="http://[::1/token",service="x"'
    hostile.route("/v2/", body(b"{}", status=401, **{"WWW-Authenticate": challenge}))
    status, answer = register()
    assert status == 409 and "token realm" in answer["message"], answer
    hostile.route("/v2/", body(b"{}"))
    hostile.route("/v2/charts/evil/tags/list", body(
        b'{"tags": []}', Link='<http://[::1/v2/charts/evil/tags/list?n=1>; rel="next"'))
    status, answer = register()
    assert status == 409 and "next page elsewhere" in answer["message"], answer
