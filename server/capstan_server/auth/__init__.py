"""Who may call the server, and what they may do: the policy file, credential checks (static
tokens, OIDC/JWT, mutual TLS), authorization by project, and the audit log.

`setup.ServerAuth` is what the app uses; `access.current_access()` is what the services ask.
docs/DEVELOPING.md ("Authentication and authorization") describes how the parts fit.
"""
