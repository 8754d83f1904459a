"""API tokens and roles.

Two modes, chosen by the bind address (see docs/api.md):

- **loopback** (default ``127.0.0.1``): only programs on the station itself can connect, so
  reading is open and writing needs no token; a token that *is* sent must be valid (and its
  role is then enforced), so scripts behave the same in both modes.
- **tokens required** (any other bind, or ``require_tokens = true``): every ``/api`` route
  except ``/api/health`` needs ``Authorization: Bearer <token>`` (or ``?token=`` for the
  browser's EventSource and <img>), and writes need a high enough role.

Roles are ranked operator < supervisor < coordinator < admin; a route that needs a role
accepts any higher one.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from qc_station.errors import AuthError
from qc_station.store import ROLE_RANK, Store


class ForbiddenError(AuthError):
    """A valid token whose role may not do this."""

    http_status = 403


@dataclass(frozen=True)
class Actor:
    """Who is making a request: a user, or ``local`` (no token, loopback mode)."""

    name: str
    role: str | None

    @property
    def label(self) -> str:
        return self.name


LOCAL = Actor("local", None)


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("Authorization header must be 'Bearer <token>'")
        return value.strip()
    return request.query_params.get("token") or None


class Auth:
    """Builds the FastAPI dependencies that check tokens and roles."""

    def __init__(self, store: Store, *, tokens_required: bool) -> None:
        self.store = store
        self.tokens_required = tokens_required

    def actor(self, request: Request) -> Actor:
        token = _token_of(request)
        if token is None:
            if self.tokens_required:
                raise AuthError("this station requires an API token: send 'Authorization: Bearer <token>' "
                                "(create one with `qc-station user add NAME --role ROLE`)")
            return LOCAL
        user = self.store.authenticate(token)
        if user is None:
            raise AuthError("invalid or revoked API token")
        return Actor(user.name, user.role)

    def reader(self):
        """Dependency for read routes."""

        def dep(request: Request) -> Actor:
            return self.actor(request)

        return dep

    def role(self, minimum: str):
        """Dependency for routes that need at least role ``minimum``."""
        if minimum not in ROLE_RANK:
            raise ValueError(f"unknown role {minimum}")

        def dep(request: Request) -> Actor:
            actor = self.actor(request)
            if actor.role is not None and ROLE_RANK[actor.role] < ROLE_RANK[minimum]:
                raise ForbiddenError(f"role {actor.role} may not do this (needs {minimum} or higher)")
            return actor

        return dep


def check_bind_security(settings, store: Store) -> None:
    """Refuse to serve off loopback (or with ``require_tokens``) while no API token exists."""
    from qc_station.errors import ConfigError

    api = settings.api
    if api.tokens_required and store.active_token_count() == 0:
        where = "reachable from the network" if not api.is_loopback else "configured with require_tokens"
        raise ConfigError(
            f"refusing to start: {api.host}:{api.port} is {where}, so every request needs an API token, "
            f"and none exists yet. Create one first: qc-station user add NAME --role admin "
            f"--data {store.data_dir}"
        )
