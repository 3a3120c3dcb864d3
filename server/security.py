"""TLS server credentials and bearer-token authentication with roles.

Tokens live in a JSON file that holds only their SHA-256 hashes::

    {"tokens": [{"token_sha256": "<64 hex digits>", "name": "crm-batch", "roles": ["score"], "accounts": ["acme", "globex"]},
                {"token_sha256": "<64 hex digits>", "name": "ops", "roles": ["score", "admin"], "accounts": "*"}]}

(``printf %s "$TOKEN" | sha256sum`` gives the hash.) A client sends ``authorization: Bearer
<token>``. Every scorecast.v1 method needs the ``score`` role, except the admin methods
(``ADMIN_METHODS`` plus the ``admin_methods`` setting), which need ``admin``; roles are
independent (an admin-only token cannot score). ``accounts`` scopes a token to the accounts
it names (``"*"``: every account; left out: the default account only, as before accounts): the
interceptor puts the scope in ``caller_accounts`` for the servicers, which answer a call for an
account outside it exactly as for a missing account. Health and reflection stay open so load
balancers can probe without a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from scorecast.accounts import DEFAULT_ACCOUNT, check_account_name
from scorecast.proto import OIP_SERVICE_NAME, SERVICE_NAME

__all__ = [
    "ADMIN_METHODS",
    "OPEN_METHODS",
    "OPEN_SERVICES",
    "ROLES",
    "Token",
    "TokenAuthInterceptor",
    "abort_handler",
    "caller_accounts",
    "hash_token",
    "load_tokens",
    "server_credentials",
]

log = logging.getLogger(__name__)

ROLES = ("score", "admin")
ADMIN_METHODS: frozenset[str] = frozenset({"ReloadModels"})
"""scorecast.v1 methods (short names) that always need the admin role."""
OPEN_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"})
"""Services callable without a token."""
OPEN_METHODS = frozenset(f"/{OIP_SERVICE_NAME}/{m}" for m in ("ServerLive", "ServerReady", "ModelReady"))
"""Open Inference Protocol probes callable without a token, like health; its other calls need ``score``."""

_HEX64 = re.compile(r"[0-9a-f]{64}")

ALL_ACCOUNTS = "*"
DEFAULT_SCOPE = frozenset({DEFAULT_ACCOUNT})
"""Accounts of a token whose entry names none: the default account (tokens files from before accounts)."""

caller_accounts: ContextVar[frozenset[str] | None] = ContextVar("scorecast_caller_accounts", default=None)
"""The accounts the running call's token may use; None: every account (no tokens, or ``"*"``)."""


@dataclass(frozen=True)
class Token:
    """One accepted token: its SHA-256 (hex), a name for logs and errors, its roles, and the
    accounts it may use (None: all)."""

    sha256: str
    name: str
    roles: frozenset[str]
    accounts: frozenset[str] | None = DEFAULT_SCOPE


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as the tokens file stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(path: Path, setting: str = "tokens_file") -> tuple[Token, ...]:
    """Read and check a tokens file; ValueError names the setting, the path and the entry."""
    where = f"{setting} {str(path)!r}"
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: not readable JSON ({exc})") from None
    entries = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f'{where}: expected {{"tokens": [{{"token_sha256": ..., "name": ..., "roles": [...]}}, ...]}} with one token at least')
    tokens: list[Token] = []
    for i, entry in enumerate(entries):
        at = f"{where}: tokens[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"token_sha256", "name", "roles", "accounts"}:
            raise ValueError(f"{at}: expected an object with token_sha256, name, roles and accounts only")
        digest, name, roles = entry.get("token_sha256"), entry.get("name"), entry.get("roles")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            raise ValueError(f"{at}: token_sha256 must be 64 hex digits (the SHA-256 of the token, never the token)")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{at}: name must be a non-empty string")
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise ValueError(f"{at} ({name!r}): roles must be a non-empty list of {ROLES}, got {roles!r}")
        if any(t.sha256 == digest.lower() for t in tokens):
            raise ValueError(f"{at} ({name!r}): the same token_sha256 as an earlier entry")
        tokens.append(Token(digest.lower(), name, frozenset(roles), _scope(entry.get("accounts", sorted(DEFAULT_SCOPE)), f"{at} ({name!r})")))
    return tuple(tokens)


def _scope(accounts: object, at: str) -> frozenset[str] | None:
    if accounts == ALL_ACCOUNTS:
        return None
    if not isinstance(accounts, list) or not accounts or not all(isinstance(a, str) for a in accounts):
        raise ValueError(f'{at}: accounts must be "*" or a non-empty list of account names ("" is the default account), got {accounts!r}')
    for account in accounts:
        if account != DEFAULT_ACCOUNT:
            try:
                check_account_name(account)
            except ValueError as exc:
                raise ValueError(f"{at}: {exc}") from None
    return frozenset(accounts)


def _read(path: Path) -> bytes:
    return Path(path).read_bytes()


def server_credentials(cert: Path, key: Path, client_ca: Path | None = None) -> grpc.ServerCredentials:
    """TLS credentials from PEM files; with ``client_ca``, clients must show a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))],
        root_certificates=_read(client_ca) if client_ca is not None else None,
        require_client_auth=client_ca is not None,
    )


def abort_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that fails at once (the request is never parsed)."""

    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Checks ``authorization: Bearer <token>`` and the role each method needs."""

    def __init__(self, tokens: Iterable[Token], admin_methods: Iterable[str] = (), plaintext: bool = False) -> None:
        self.tokens = tuple(tokens)
        self._warn_plaintext = threading.Event() if plaintext else None
        self.admin_methods = frozenset(f"/{SERVICE_NAME}/{m}" for m in (*ADMIN_METHODS, *admin_methods))

    def role_for(self, method: str) -> str | None:
        """The role ``method`` (``/package.Service/Method``) needs; None if it is open to all."""
        service = method.lstrip("/").split("/", 1)[0]
        if service in OPEN_SERVICES or method in OPEN_METHODS:
            return None
        return "admin" if method in self.admin_methods else "score"

    def _find(self, token: str) -> Token | None:
        digest = hash_token(token)
        found = None
        for candidate in self.tokens:  # every entry compared, in constant time each
            if hmac.compare_digest(candidate.sha256, digest):
                found = candidate
        return found

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        role = self.role_for(details.method)
        if handler is None:
            return handler
        metadata: Mapping[str, Any] = dict(details.invocation_metadata or ())
        if role is None:
            if details.method not in OPEN_METHODS:
                return handler
            # OIP's open probes (ModelReady) answer for the accounts of a valid token if one comes,
            # else for the default account only: no caller learns of an account outside its scope
            token = _bearer(metadata.get("authorization"))
            found = self._find(token) if token is not None else None
            return _scoped(handler, found.accounts if found is not None else DEFAULT_SCOPE)
        value = metadata.get("authorization")
        if not isinstance(value, str) or not value.strip():
            return abort_handler(handler, grpc.StatusCode.UNAUTHENTICATED, "missing token: send metadata 'authorization: Bearer <token>'")
        if self._warn_plaintext is not None and not self._warn_plaintext.is_set():
            self._warn_plaintext.set()  # once per server: the point is made, the log not flooded
            log.warning("a token came over plaintext (no TLS): anyone on the path can read and reuse it; set tls_cert and tls_key")
        token = _bearer(value)
        if token is None:
            return abort_handler(handler, grpc.StatusCode.UNAUTHENTICATED, "malformed authorization metadata: expected 'Bearer <token>'")
        found = self._find(token)
        if found is None:
            log.warning("refused %s: unknown token", details.method)
            return abort_handler(handler, grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        if role not in found.roles:
            log.warning("refused %s: token %r lacks role %r", details.method, found.name, role)
            return abort_handler(
                handler, grpc.StatusCode.PERMISSION_DENIED, f"token {found.name!r} lacks the {role!r} role that {details.method} needs"
            )
        return _scoped(handler, found.accounts)


def _bearer(value: object) -> str | None:
    """The token of an ``authorization: Bearer <token>`` value; None if it is not one."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _scoped(handler: grpc.RpcMethodHandler, accounts: frozenset[str] | None) -> grpc.RpcMethodHandler:
    """``handler`` running with ``caller_accounts`` set to ``accounts`` (the interceptor runs on
    gRPC's polling thread, the handler on a worker: the scope travels with the handler)."""
    if accounts is None:
        return handler  # the variable's default: every account
    if handler.request_streaming and handler.response_streaming:
        stream = handler.stream_stream

        def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            reset = caller_accounts.set(accounts)
            try:
                yield from stream(requests, context)
            finally:
                caller_accounts.reset(reset)

        return grpc.stream_stream_rpc_method_handler(stream_stream, handler.request_deserializer, handler.response_serializer)
    if handler.request_streaming or handler.response_streaming:
        raise TypeError("token scopes cover unary calls and bidirectional streams only")
    unary = handler.unary_unary

    def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
        reset = caller_accounts.set(accounts)
        try:
            return unary(request, context)
        finally:
            caller_accounts.reset(reset)

    return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer, handler.response_serializer)
