"""The tenancy part of the policy (issue 14): per project and cluster the identity helm acts
as, the manifest rules, `clusters: {glob: {impersonate: false}}`, and which project a call in
a namespace acts as."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from capstan_server.auth.access import Access, Subject
from capstan_server.auth.policy import Policy, PolicyError, parse_policy
from capstan_server.auth.tenancy import acted_as, tenancy_of, warn_unimpersonated
from capstan_server.drivers.base import KubeIdentity
from capstan_server.errors import PermissionDenied

HASH = "b" * 64
POLICY = f"""\
clusters:
  "lab-*": {{impersonate: false}}
projects:
  team-a:
    - cluster: "*"
      namespaces: ["team-a", "shared"]
  team-c:
    - cluster: prod
      namespaces: ["team-c-*", "shared"]
      user: "svc:team-c"
      groups: ["tenants", "team c"]
      cluster_resources: ["CustomResourceDefinition", "ClusterRole.rbac.authorization.k8s.io"]
      denied_kinds: ["NetworkPolicy"]
subjects:
  - name: both
    token_sha256: "{HASH}"
    role: editor
    projects: [team-c, team-a]
  - name: root
    token_sha256: "{"c" * 64}"
    role: admin
"""


def _access(policy: Policy, name: str) -> Access:
    rule = next(s for s in policy.subjects if s.name == name)
    return Access(Subject(name, "token", (policy.binding(rule),)), policy)


def test_identity_and_rules_per_project_and_cluster() -> None:
    policy = parse_policy(POLICY)
    both = _access(policy, "both")
    a = tenancy_of(both, "prod", "team-a")
    assert a is not None and a.project == "team-a"
    assert a.identity == KubeIdentity("capstan:project:team-a", ("capstan:projects",))
    assert a.cluster_resources == () and a.denied_kinds == ()
    c = tenancy_of(both, "prod", "team-c-web")
    assert c is not None and c.identity == KubeIdentity("svc:team-c", ("tenants", "team c"))
    assert c.cluster_resources[0] == "CustomResourceDefinition"
    assert c.denied_kinds == ("NetworkPolicy",)
    assert c.owns_namespace("shared") and not c.owns_namespace("team-a")
    assert both.kube_user == "svc:team-c"  # for the audit line


def test_a_namespace_of_two_projects_acts_as_the_first_of_the_subjects_list() -> None:
    policy = parse_policy(POLICY)
    found = tenancy_of(_access(policy, "both"), "prod", "shared")
    assert found is not None and found.project == "team-c"  # listed first in its projects
    found = tenancy_of(_access(policy, "both"), "staging", "shared")
    assert found is not None and found.project == "team-a"  # team-c has no grant there


def test_admin_no_policy_and_opted_out_clusters_keep_the_stored_identity() -> None:
    policy = parse_policy(POLICY)
    assert tenancy_of(_access(policy, "root"), "prod", "team-a") is None
    assert tenancy_of(Access(None), "prod", "team-a") is None
    lab = tenancy_of(_access(policy, "both"), "lab-1", "team-a")
    assert lab is not None and lab.identity is None and lab.project == "team-a"
    assert acted_as(_access(policy, "both"), "lab-1", "team-a") is None


def test_outside_every_project_is_refused_never_the_stored_identity() -> None:
    both = _access(parse_policy(POLICY), "both")
    with pytest.raises(PermissionDenied):
        tenancy_of(both, "prod", "kube-system")
    assert acted_as(both, "prod", "kube-system") is None


def test_opt_out_is_loud(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_unimpersonated(parse_policy(POLICY, source="p.yaml"))
    assert "'lab-*' have impersonate: false" in caplog.text and "NOTHING" in caplog.text


@pytest.mark.parametrize(("text", "message"), [
    ("clusters: {x: {impersonate: no-way}}", "clusters.x.impersonate: expected true or false"),
    ("clusters: {x: {other: 1}}", "unknown key(s) 'other'"),
    ("projects: {a: [{cluster: c, namespaces: [n], user: ' x'}]}",
     "projects.a[0]: invalid Kubernetes user or group"),
    ("projects: {a: [{cluster: c, namespaces: [n], groups: g}]}",
     "projects.a[0].groups: expected a list"),
    ("projects: {a: [{cluster: c, namespaces: [n], cluster_resources: [1]}]}",
     "cluster_resources[0]: expected a non-empty string"),
])
def test_tenancy_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="p.yaml")
    assert message in str(raised.value)


def test_the_readme_example_parses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                  if "impersonate: false" in b]
    policy = parse_policy(example)
    assert not policy.cluster_settings("lab-1").impersonate
    assert policy.projects["team-a"][0].denied_kinds == ("NetworkPolicy",)
