"""Bearer tokens, as panda-client sends them with PANDA_AUTH=oidc: an OIDC id token in
``Authorization: Bearer``, and the VO (and role) it acts in as ``Origin: <vo>[.role]``.

A token is believed only when all of this holds, else it is refused (403):
- its VO is one the facility knows (``token_vos``), and its audience is one of that
  VO's client ids (the ids whose auth config the server publishes);
- it is RS256, signed by a key (by ``kid``) of the issuer's published key set, found
  through the VO's discovery document (both cached, refetched for an unknown key);
- its issuer is the discovery document's, it has not expired and is already valid;
- its groups (``groups``, or ``wlcg.groups`` for the WLCG profile) hold the VO, or
  ``<vo>/<role>`` when the Origin names a role.
The identity is upstream's user name for a token (the ``name`` claim with the
``preferred_username`` as a nickname, else ``sub``); the production role is the role
``production`` with the group ``<vo>/production``. An issuer that cannot be reached
when its keys are not cached is a 503 (the client retries), never a pass."""

from __future__ import annotations

import base64
import math
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pandafacility import safejson

ALGORITHM = "RS256"
CACHE_SECONDS = 600
REFETCH_SECONDS = 60  # an unknown kid refetches the key set at most this often
RETRY_SECONDS = 10  # an issuer that could not be read is not asked again sooner
LEEWAY = 60  # seconds of clock skew allowed on exp and nbf
MAX_TOKEN = 16384


class TokenError(Exception):
    """The token is not believed (403)."""


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be read now (503)."""


@dataclass(frozen=True)
class TokenVo:
    """One VO's token settings, as its published auth config names them."""

    vo: str
    oidc_config_url: str
    client_id: str
    secondary_ids: tuple[str, ...] = ()
    audience: str = ""
    jwt_profile: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenVo:
        return cls(
            vo=str(data["vo"]),
            oidc_config_url=str(data["oidc_config_url"]),
            client_id=str(data["client_id"]),
            secondary_ids=tuple(str(i) for i in data.get("secondary_ids", [])),
            audience=str(data.get("audience", "")),
            jwt_profile=str(data.get("jwt_profile", "")),
        )

    @property
    def client_ids(self) -> frozenset[str]:
        return frozenset((self.client_id, *self.secondary_ids))

    def auth_config(self) -> dict[str, Any]:
        """What panda-client reads from /auth/<vo>_auth_config.json (a public client)."""
        config = {"vo": self.vo, "oidc_config_url": self.oidc_config_url,
                  "client_id": self.client_id, "client_secret": None,
                  "audience": self.audience or self.client_id}  # fmt: skip
        if self.jwt_profile:
            config["jwt_profile"] = self.jwt_profile
        return config


@dataclass
class _Cached:
    value: dict[str, Any]
    at: float


class _HttpsOnly(urllib.request.HTTPRedirectHandler):
    """An issuer's redirect is followed to https only."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if not str(newurl).startswith("https://"):
            raise IssuerUnavailable(f"{newurl}: only https is read")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_json(url: str, ca_file: str = "", timeout: float = 5.0) -> dict[str, Any]:
    if not url.startswith("https://"):
        raise IssuerUnavailable(f"{url}: only https is read")
    context = ssl.create_default_context(cafile=ca_file or None)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _HttpsOnly)
    with opener.open(url, timeout=timeout) as answer:
        data = safejson.loads(answer.read(1 << 20))
    if not isinstance(data, dict):
        raise IssuerUnavailable(f"{url}: not a JSON object")
    return data


@dataclass
class Verifier:
    vos: dict[str, TokenVo]
    fetch: Callable[[str], dict[str, Any]] = fetch_json
    clock: Callable[[], float] = time.time
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _failed: dict[str, float] = field(default_factory=dict)
    _fetching: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def identify(self, token: str, origin: str) -> tuple[str, bool]:
        """The user name a verified token acts as, and whether with the production role."""
        vo_name, role = parse_origin(origin)
        vo = self.vos.get(vo_name)
        if vo is None:
            raise TokenError(f"unknown VO {vo_name[:64]!r} in Origin")
        header, claims, signed, signature = _split(token)
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise TokenError(f"only {ALGORITHM} tokens with a key id are accepted")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences
        if not isinstance(audiences, list) or not vo.client_ids & set(map(str, audiences)):
            raise TokenError(f"the token is not for {vo.vo}'s clients")
        discovery = self._get(vo.oidc_config_url)
        key = self._key(str(discovery.get("jwks_uri", "")), header["kid"])
        _verify_rs256(key, signed, signature)
        issuer = str(discovery.get("issuer", ""))
        if not issuer or str(claims.get("iss", "")).rstrip("/") != issuer.rstrip("/"):
            raise TokenError("the token's issuer is not the VO's")
        now = self.clock()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or not math.isfinite(exp) or exp < now - LEEWAY:
            raise TokenError("the token has expired")
        if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + LEEWAY:
            raise TokenError("the token is not valid yet")
        groups = claims.get("wlcg.groups" if vo.jwt_profile == "wlcg" else "groups") or []
        groups = {str(g).strip("/") for g in groups} if isinstance(groups, list) else set()
        wanted = f"{vo.vo}/{role}" if role else vo.vo
        if wanted not in groups:
            raise TokenError(f"not a member of the {wanted} group")
        return user_name(claims), role == "production"

    def _get(self, url: str, fresh: bool = False) -> dict[str, Any]:
        """A document of the issuer, cached. One thread fetches it at a time; while it
        does, the others use the stale copy (or, with none, wait for its outcome), so a
        slow issuer holds one thread, not all of them."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get(url)
            fetching = self._fetching.setdefault(url, threading.Lock())
        if cached and now - cached.at < (REFETCH_SECONDS if fresh else CACHE_SECONDS):
            return cached.value
        if cached and not fetching.acquire(blocking=False):
            return cached.value
        if not cached:
            fetching.acquire()
        try:
            with self._lock:
                latest, failed = self._cache.get(url), self._failed.get(url)
            if latest is not None and latest is not cached:  # fetched while this one waited
                return latest.value
            if failed is not None and self.clock() - failed < RETRY_SECONDS:
                if cached:  # a flood of tokens must not each wait on the issuer
                    return cached.value
                raise IssuerUnavailable(f"{url} could not be read just now")
            try:
                value = self.fetch(url)
            except Exception as exc:
                with self._lock:
                    self._failed[url] = self.clock()
                if cached:  # the issuer is away: its keys a while longer
                    return cached.value
                raise IssuerUnavailable(f"cannot read {url}: {exc}") from exc
            with self._lock:
                self._cache[url] = _Cached(value, self.clock())
                self._failed.pop(url, None)
            return value
        finally:
            fetching.release()

    def _key(self, jwks_uri: str, kid: str) -> dict[str, Any]:
        if not jwks_uri:
            raise IssuerUnavailable("the discovery document names no jwks_uri")
        for fresh in (False, True):  # a new key: the set is read again
            for key in self._get(jwks_uri, fresh).get("keys", []):
                if isinstance(key, dict) and key.get("kid") == kid and key.get("kty") == "RSA":
                    return key
        raise TokenError(f"no key {kid[:64]!r} in the issuer's key set")


def parse_origin(origin: str) -> tuple[str, str]:
    """``vo``, ``vo.role`` (split at the last dot) or ``vo:role``."""
    origin = origin.strip()
    if not origin or len(origin) > 128:
        raise TokenError("an Origin header naming the VO is required with a token")
    for sep in (":", "."):
        if sep in origin:
            vo, role = origin.rsplit(sep, 1)
            return vo, role
    return origin, ""


def user_name(claims: dict[str, Any]) -> str:
    """Upstream's user name for a token: the name (title-cased) with the preferred
    username as a nickname, else the subject."""
    name = str(claims.get("name") or "").strip()
    if name:
        nickname = str(claims.get("preferred_username") or "").strip()
        return _not_a_dn(name.title() + (f"/CN=nickname:{nickname}" if nickname else ""))
    subject = str(claims.get("sub") or "").strip()
    if not subject:
        raise TokenError("the token names nobody (no name, no sub)")
    return _not_a_dn(subject)


def _not_a_dn(name: str) -> str:
    """A token's user may not pose as a certificate's (whose DNs start with a slash)."""
    if name.startswith("/") or len(name) > 255:
        raise TokenError("the token's user name looks like a certificate DN or is too long")
    return name


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    if len(token) > MAX_TOKEN:
        raise TokenError("the token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a signed JWT")
    try:
        header, claims = safejson.loads(_b64(parts[0])), safejson.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except ValueError as exc:
        raise TokenError("the token cannot be read") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("the token cannot be read")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _verify_rs256(jwk: dict[str, Any], signed: bytes, signature: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(_b64(str(jwk["e"])), "big"), int.from_bytes(_b64(str(jwk["n"])), "big")
        )
        key = numbers.public_key()
    except (KeyError, ValueError) as exc:
        raise TokenError("the issuer's key cannot be read") from exc
    if key.key_size < 2048:
        raise TokenError("the issuer's key is too short")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise TokenError("the token's signature does not verify") from exc
