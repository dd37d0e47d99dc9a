"""The policy file: what it accepts, how it says what is wrong, and what its grants cover."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_kit import Signer, write_policy

from capstan_server.auth.access import Access, Action, Subject
from capstan_server.auth.policy import PolicyError, Role, load_policy, parse_policy

HASH = "a" * 64


def test_the_kits_policy_loads(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, Signer()))
    assert set(policy.projects) == {"team-a", "team-b"}
    assert policy.oidc is not None and policy.oidc.leeway == 5
    admin = next(s for s in policy.subjects if s.name == "admin")
    assert admin.role is Role.ADMIN and policy.binding(admin).grants is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("projects: []", "projects: expected a mapping"),
        ("extra: 1", "unknown key(s) 'extra'"),
        ("projects: {a: [{cluster: c}]}", "projects.a[0].namespaces: expected a list"),
        (f"subjects: [{{name: x, role: viewer, token_sha256: '{HASH}'}}]",
         "a viewer needs at least one project"),
        (f"subjects: [{{name: x, role: root, token_sha256: '{HASH}'}}]",
         "'root' is not viewer, editor or admin"),
        ("subjects: [{name: x, role: admin}]", "give exactly one of"),
        (f"subjects: [{{name: x, role: admin, projects: [nope], token_sha256: '{HASH}'}}]",
         "unknown project(s) 'nope'"),
        (f"subjects: [{{name: x, role: admin, token_sha256: '{HASH}'}}, "
         f"{{name: y, role: admin, token_sha256: '{HASH}'}}]", "the same token_sha256"),
        ("subjects: [{group: g, role: admin}]", "there is no oidc:"),
        ("oidc: {issuer: i, audience: a}", "exactly one of jwks_file and jwks_url"),
        ("oidc: {issuer: i, audience: a, jwks_url: x, algorithms: [HS256]}",
         "jwks_url: expected an https:// URL"),
        ("projects: {a: [}", "policy file"),
    ],
)
def test_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="p.yaml")
    assert message in str(raised.value)
    assert str(raised.value).startswith("p.yaml")


def test_grants_cover_globs_and_admin_everything(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, Signer()))
    rules = {s.name: s for s in policy.subjects}

    def access(name: str) -> Access:
        return Access(Subject(name, "token", (policy.binding(rules[name]),)), policy)

    editor = access("editor-a")
    assert editor.may(Action.WRITE, "test122", "team-a-staging")
    assert not editor.may(Action.WRITE, "test122", "team-b")
    assert not editor.may(Action.WRITE, "other", "team-a")
    assert not editor.may_anywhere(Action.ADMIN)
    assert access("viewer-a").may(Action.READ, "test122", "team-a")
    assert not access("viewer-a").may(Action.WRITE, "test122", "team-a")
    assert access("editor-b").may(Action.WRITE, "test-9", "team-b")  # cluster glob "test*"
    assert access("admin").may(Action.ADMIN, "anything", "any")
    assert editor.project_of("test122", "team-a") == "team-a"
    assert editor.project_of("test122", "kube-system") == ""
