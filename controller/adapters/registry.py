"""A registry's HTTP API (distribution v2): a tag's digest and a repository's tags.

Why Berth asks the registry itself instead of pulling: a pull downloads layers, while the
digest of a tag is one HEAD of its manifest (Docker-Content-Digest), and the tag list is one
GET per 1,000 tags; image-update automation and digest pinning need nothing more.

It behaves as the engine does, so that a tag resolves here exactly when it would pull:
- credentials from the same docker config (DOCKER_CONFIG or ~/.docker/config.json), with
  its credential helpers, through the Docker SDK's own resolver;
- trust from the engine's per-registry CA directory (`/etc/docker/certs.d/HOST:PORT/*.crt`)
  on top of the system's, and the engine's list of insecure registries (HTTP or unverified
  TLS only there);
- the token flow (a 401 with `WWW-Authenticate: Bearer`, then the realm for a token) and
  basic auth; the manifest types of a multi-arch index first, so an index's digest is
  the one pinned and the engine picks the platform at pull time.

Every answer is bounded in size and time: a registry is outside the operator's tree.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.adapters.registry_http import Deadline, opener
from controller.errors import BerthError, Retry, printable

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
DOCKER_HUB = "docker.io"
_HUB_API = "registry-1.docker.io"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_BODY = 4 << 20  # a manifest or one page of tags; real ones are a few KiB
MAX_TAGS = 20_000  # more than any real repository keeps; bounds memory and pages
_PAGE = 1000


class RegistryError(BerthError):
    """What a registry answered (or did not). `kind` says which, for the operator."""

    def __init__(self, message: str, *, kind: str, retry: Retry = Retry.TRANSIENT) -> None:
        super().__init__(message, retry=retry, delay=5.0)
        self.kind = kind  # unauthorized | not_found | unreachable | protocol


@dataclass(frozen=True)
class ImageName:
    """`registry/repository` of an image reference, as the engine normalises it."""

    registry: str  # host[:port]; "docker.io" for Docker Hub
    repository: str  # "library/nginx", "team/api"

    @property
    def api_host(self) -> str:
        return _HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


def split_reference(ref: str) -> tuple[ImageName, str | None, str | None]:
    """`[host/]path[:tag][@digest]` -> (name, tag, digest), normalised as Docker does: a
    first component without '.', ':' or 'localhost' is a Docker Hub path."""
    rest, _, digest = ref.partition("@")
    head, slash, tail = rest.partition("/")
    if slash and ("." in head or ":" in head or head == "localhost"):
        registry, path = head, tail
    else:
        registry, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        name, tag = path, ""
    if registry == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    return ImageName(registry, name), tag or None, digest or None


Auth = Callable[[str], Mapping[str, Any] | None]


class Registry:
    """Thread-safe: the daemon's workers resolve concurrently; tokens are shared."""

    def __init__(
        self,
        *,
        auth: Auth,
        insecure: Callable[[str], bool],
        certs_dir: str = "/etc/docker/certs.d",
        timeout: float = 10.0,
    ) -> None:
        self._auth, self._insecure = auth, insecure
        self._certs_dir, self._timeout = certs_dir, timeout
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    # -- the port (controller.ports.RegistryPort) -----------------------------------------

    def digest(self, ref: str) -> str:
        name, tag, _ = split_reference(ref)
        return self.manifest_digest(name, tag or "latest")

    def tags(self, repository: str) -> list[str]:
        name, _, _ = split_reference(repository)
        return self.tag_list(name)

    # -- the two questions ---------------------------------------------------------------

    def manifest_digest(self, name: ImageName, tag: str) -> str:
        """The digest `tag` points at now (an index's digest for a multi-arch image)."""
        path = f"/v2/{name.repository}/manifests/{urllib.parse.quote(tag, safe='')}"
        head = {"Accept": ", ".join(MANIFEST_TYPES)}
        status, headers, _ = self._call(name, "HEAD", path, head, what=f"{name}:{tag}")
        found = headers.get("docker-content-digest", "")
        if status == 200 and _DIGEST.fullmatch(found):
            return found
        # Some registries answer HEAD without the header: the digest of the GET body is it.
        status, headers, body = self._call(name, "GET", path, head, what=f"{name}:{tag}")
        if status != 200:  # a 204 has no manifest: the digest of nothing is no image
            raise RegistryError(
                f"{name}:{tag}: registry {name.registry} answered HTTP {status}, not a manifest",
                kind="protocol",
            )
        found = headers.get("docker-content-digest", "")
        return found if _DIGEST.fullmatch(found) else f"sha256:{hashlib.sha256(body).hexdigest()}"

    def tag_list(self, name: ImageName) -> list[str]:
        """Every tag of the repository (paged with `n` and the Link header, bounded)."""
        out: list[str] = []
        path: str | None = f"/v2/{name.repository}/tags/list?n={_PAGE}"
        seen: set[str] = set()
        # a registry that pages forever (a Link to itself, empty pages) is cut off
        while path is not None and path not in seen and len(seen) <= MAX_TAGS // _PAGE:
            seen.add(path)
            _, headers, body = self._call(name, "GET", path, {}, what=f"{name} tags")
            try:
                doc = json.loads(body)
                page = doc.get("tags") or []
            except (ValueError, AttributeError) as exc:
                raise RegistryError(f"{name}: tag list is not JSON", kind="protocol") from exc
            if not isinstance(page, list):
                raise RegistryError(f"{name}: tag list is not a list", kind="protocol")
            before = len(out)
            out.extend(t for t in page if isinstance(t, str) and len(t) <= 128)
            if len(out) >= MAX_TAGS or len(out) == before:
                break
            path = _next_page(headers.get("link", ""), name.repository)
        return out[:MAX_TAGS]

    # -- HTTP ------------------------------------------------------------------------------

    def _call(
        self, name: ImageName, method: str, path: str, headers: Mapping[str, str], *, what: str
    ) -> tuple[int, dict[str, str], bytes]:
        scope = f"repository:{name.repository}:pull"
        token = self._cached_token(name.api_host, scope)
        hdrs = dict(headers)
        if token:
            hdrs["Authorization"] = token
        status, got, body = self._send(name, method, path, hdrs)
        if status == 401:
            auth = self._answer_challenge(name, got.get("www-authenticate", ""), scope)
            if auth:
                hdrs["Authorization"] = auth
                status, got, body = self._send(name, method, path, hdrs)
        if status in (401, 403):
            raise RegistryError(
                f"{what}: registry {name.registry} refused the credentials "
                f"({status}); check the docker config's login for it",
                kind="unauthorized",
            )
        if status == 404:
            raise RegistryError(f"{what}: not found in registry {name.registry}", kind="not_found")
        if status >= 300 or status < 200:  # a redirect urllib would not follow, too
            raise RegistryError(
                f"{what}: registry {name.registry} answered HTTP {status}",
                kind="unreachable" if status >= 500 or status == 429 else "protocol",
            )
        return status, got, body

    def _send(
        self, name: ImageName, method: str, path: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        host = name.api_host
        insecure = self._insecure(host)
        schemes = ("https", "http") if insecure else ("https",)
        last: Exception | None = None
        for scheme in schemes:
            req = urllib.request.Request(f"{scheme}://{host}{path}", method=method)
            for k, v in headers.items():
                req.add_header(k, v)
            deadline = Deadline(READ_DEADLINE + self._timeout)  # the whole exchange
            try:
                with (
                    deadline,
                    opener(self._context(host, insecure), deadline).open(
                        req, timeout=self._timeout
                    ) as resp,
                ):
                    got = resp.status, _lower(resp.headers), _read(resp)
                deadline.check()
                return got
            except urllib.error.HTTPError as exc:
                with exc:
                    got = exc.code, _lower(exc.headers), _read(exc)
                if not deadline.expired:
                    return got
                last = deadline.why(exc)
            # refused, TLS, DNS, timeout, bad URL; not HTTP (a bad status line or chunk)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                last = deadline.why(exc)
        reason = getattr(last, "reason", last)
        raise RegistryError(
            f"registry {name.registry} unreachable: {printable(str(reason))[:300]}",
            kind="unreachable",
        )

    def _context(self, host: str, insecure: bool) -> ssl.SSLContext:
        if insecure:  # the engine does not verify these either (its insecure-registries)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no trust store to read (~40 ms)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context()
        extra = os.path.join(self._certs_dir, host)
        if os.path.isdir(extra):
            for f in sorted(os.listdir(extra)):
                if f.endswith(".crt"):
                    ctx.load_verify_locations(cafile=os.path.join(extra, f))
        return ctx

    # -- credentials ---------------------------------------------------------------------

    def _basic(self, name: ImageName) -> str | None:
        conf = self._auth(name.registry) or {}
        user, password = conf.get("username") or conf.get("Username"), conf.get("password")
        password = password or conf.get("Password") or conf.get("IdentityToken")
        if not user or not password:
            return None
        raw = f"{user}:{password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _answer_challenge(self, name: ImageName, challenge: str, scope: str) -> str | None:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            return self._basic(name)
        if scheme.lower() != "bearer":
            return None
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            return None
        if realm.startswith("http://") and not self._insecure(name.api_host):
            # the login would cross the network in clear text to wherever the registry
            # points: only for a registry the engine itself reaches without TLS
            return None
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        req = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}")
        basic = self._basic(name)
        if basic:
            req.add_header("Authorization", basic)
        deadline = Deadline(READ_DEADLINE + self._timeout)
        try:
            ctx = self._context(urllib.parse.urlsplit(realm).netloc, False)
            with deadline, opener(ctx, deadline).open(req, timeout=self._timeout) as resp:
                doc = json.loads(_read(resp, limit=64 << 10))
            deadline.check()
        except urllib.error.HTTPError as exc:
            with exc:
                return None  # the resource request then fails with 401: reported there
        except (OSError, ValueError, http.client.HTTPException) as failed:
            why = deadline.why(failed)
            raise RegistryError(
                f"{name}: token service unreachable: {printable(str(why))[:300]}",
                kind="unreachable",
            ) from failed
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str):
            return None
        ttl = doc.get("expires_in", 60)
        # kept at most an hour: a 400-digit integer is no float, and a token the registry
        # stops honouring costs one more challenge anyway
        ttl = float(min(ttl, 3600)) if isinstance(ttl, int | float) and ttl > 0 else 60.0
        with self._lock:
            self._tokens[(name.api_host, scope)] = (f"Bearer {token}", time.monotonic() + ttl)
        return f"Bearer {token}"

    def _cached_token(self, host: str, scope: str) -> str | None:
        with self._lock:
            got = self._tokens.get((host, scope))
        if got and got[1] - 5 > time.monotonic():
            return got[0]
        return None


READ_DEADLINE = 30.0  # seconds for a whole answer: a registry that trickles is cut off


def _read(resp: Any, *, limit: int = MAX_BODY) -> bytes:
    """The whole body, bounded in size and in total time (the socket timeout bounds only
    each read, and a byte every few seconds would never trip it)."""
    deadline = READ_DEADLINE
    end = time.monotonic() + deadline
    chunks: list[bytes] = []
    size = 0
    while True:
        # read1: whatever one socket read brings, so the deadline is checked between them
        try:
            chunk: bytes = resp.read1(min(65536, limit + 1 - size))
        except (OSError, http.client.HTTPException) as exc:  # reset, a broken chunk
            why = f"registry answer broken off: {printable(str(exc))[:200]}"
            raise RegistryError(why, kind="unreachable") from exc
        if not chunk:
            if getattr(resp, "length", None):  # fewer bytes than its Content-Length
                raise RegistryError("registry answer cut short", kind="protocol")
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RegistryError(f"registry answer larger than {limit} bytes", kind="protocol")
        if time.monotonic() > end:
            why = f"registry answer took more than {deadline:g} s"
            raise RegistryError(why, kind="unreachable")


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers.items() if headers else [])}


def _next_page(link: str, repository: str) -> str | None:
    """The next page from `Link: </v2/...?last=x&n=1000>; rel="next"`, kept on the same
    repository's path (a registry may not send the client elsewhere)."""
    m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
    if not m:
        return None
    target = urllib.parse.urlsplit(m.group(1))
    if target.path != f"/v2/{repository}/tags/list":
        return None
    return f"{target.path}?{target.query}" if target.query else target.path


def docker_auth(config_path: str | None = None) -> Auth:
    """Credentials for a registry from the docker config, re-read at each call (a login
    after Berth started counts), credential helpers included (the SDK runs them)."""
    import docker.auth

    def auth(registry: str) -> Mapping[str, Any] | None:
        conf = docker.auth.load_config(config_path=config_path)
        found: Mapping[str, Any] | None = conf.resolve_authconfig(registry)
        return found

    return auth


def engine_insecure(info: Callable[[], Mapping[str, Any]]) -> Callable[[str], bool]:
    """The engine's own answer (its RegistryConfig): which registries it reaches without
    verified TLS. Asked once, lazily. An engine that does not answer (a socket proxy that
    denies /info, docs/operations.md) is taken to have Docker's default: 127.0.0.0/8."""
    import ipaddress

    cache: list[Mapping[str, Any]] = []

    def insecure(host: str) -> bool:
        if not cache:
            try:
                cache.append(info().get("RegistryConfig") or {})
            except Exception:
                cache.append({"InsecureRegistryCIDRs": ["127.0.0.0/8"]})
        cfg = cache[0]
        index = (cfg.get("IndexConfigs") or {}).get(host)
        if isinstance(index, Mapping) and "Secure" in index:
            return not index["Secure"]
        bare = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if bare == "localhost":
            bare = "127.0.0.1"
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            return False
        nets = cfg.get("InsecureRegistryCIDRs") or []
        return any(ip in ipaddress.ip_network(n, strict=False) for n in nets)

    return insecure
