"""docs/tenancy.md is true: its RBAC objects, applied to kubesim, give the stored identity the
right to impersonate exactly the projects, and each project exactly its namespaces."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from kubesim.identity import UserInfo
from kubesim.testing import find_tools_bin, run_tool, running_kubesim

DOC = Path(__file__).resolve().parents[1] / "docs" / "tenancy.md"
STORED = "system:serviceaccount:capstan-system:capstan"


def _yaml_blocks() -> str:
    return "\n---\n".join(re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S))


def _checks() -> list[tuple[list[str], str]]:
    block = re.search(r"## 3\. Checking it\n\n```\n(.*?)```", DOC.read_text(), re.S)
    assert block
    out = []
    for line in block.group(1).splitlines():
        command, _, expected = line.partition("#")
        if expected.strip():
            out.append((command.split()[1:], expected.strip()))
    return out


def test_tenancy_doc_examples(tmp_path: Path) -> None:
    tools = find_tools_bin(Path(__file__).parent)
    kubectl = tools / "kubectl" if tools else Path("missing")
    if not kubectl.exists():
        pytest.skip("kubectl is not installed (make setup)")
    stored = UserInfo(STORED, groups=("system:serviceaccounts", "system:authenticated"))
    with running_kubesim(user_tokens={"stored-token": stored}) as sim:
        for ns in ("team-a", "team-b", "capstan-system"):
            sim.store.create("namespaces", {"metadata": {"name": ns}})
        manifest = tmp_path / "rbac.yaml"
        manifest.write_text(_yaml_blocks())
        assert len(list(yaml.safe_load_all(manifest.read_text()))) == 8
        run_tool(kubectl, ["apply", "-f", str(manifest)], sim.kubeconfig_path)

        checks = _checks()
        assert len(checks) == 3
        for args, expected in checks:
            proc = run_tool(kubectl, args, sim.kubeconfig_path, check=False)
            assert proc.stdout.strip() == expected, (args, proc.stderr)

        def as_stored(user: str, path: str, *groups: str) -> int:
            req = urllib.request.Request(sim.url + path, headers={
                "Authorization": "Bearer stored-token", "Impersonate-User": user})
            for group in groups:
                req.add_header("Impersonate-Group", group)
            try:
                with urllib.request.urlopen(req) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as err:
                json.loads(err.read())
                return int(err.code)

        # the stored identity impersonates the projects (and their group), nobody else
        assert as_stored("capstan:project:team-a", "/api/v1/namespaces/team-a/secrets",
                         "capstan:projects") == 200
        assert as_stored("capstan:project:team-a", "/api/v1/namespaces/team-b/secrets") == 403
        assert as_stored("capstan:project:team-b", "/api/v1/namespaces/team-b/pods") == 200
        assert as_stored("kubesim-admin", "/api/v1/namespaces/team-a/secrets") == 403
        assert as_stored("capstan:project:team-a", "/api/v1/namespaces/team-a/secrets",
                         "system:masters") == 403
        # its own bookkeeping reads
        req = urllib.request.Request(sim.url + "/api/v1/secrets?labelSelector=owner%3Dhelm",
                                     headers={"Authorization": "Bearer stored-token"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 200
