"""Request admission: authenticate, apply impersonation, authorize with RBAC -- or 401/403.

`Access.admit` is the one check every non-public request passes (the server's auth middleware
calls it). The admin identity (``system:masters``) is allowed everything without looking at a
single RBAC object, so requests made with the stored kubeconfig cost what they did before RBAC.
RBAC writes are further checked for escalation (`kubesim.escalation`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from .errors import ApiError
from .escalation import ACTING_USER, EscalationCheck
from .identity import Authenticator, UserInfo
from .impersonation import impersonated_user
from .rbac import RBACAuthorizer, forbidden_details, forbidden_message
from .request_info import request_attributes
from .store import Store


class Access:
    """Authentication, impersonation and authorization of requests to one `Store`."""

    def __init__(
        self, store: Store, admin_token: str, user_tokens: Mapping[str, UserInfo] | None = None
    ) -> None:
        self.authenticator = Authenticator(admin_token, user_tokens)
        self.authorizer = RBACAuthorizer(store)
        self.remove_escalation_check = store.add_mutator(EscalationCheck(self.authorizer))

    def admit(self, request: web.Request, anonymous: bool) -> UserInfo:
        """The user ``request`` acts as, once authorized; raises 401/403 `ApiError` s."""
        requestor = self.authenticator.authenticate(request.headers.get("Authorization"),
                                                    anonymous)
        user = impersonated_user(request.headers.items(), requestor, self.authorizer.authorize)
        if not user.privileged:
            attrs = request_attributes(user, request.method, request.path, request.query)
            decision = self.authorizer.authorize(attrs)
            if not decision.allowed:
                raise ApiError(403, "Forbidden", forbidden_message(attrs, decision.reason),
                               forbidden_details(attrs))
        # each request is served in its own task: the writes it makes see who makes them
        ACTING_USER.set(user)
        return user
