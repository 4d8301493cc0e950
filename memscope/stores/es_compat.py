"""One Python client (elasticsearch-py 9) for 8.19+ and 9.x servers: the server's version, detected once.

elasticsearch-py 9 sends `Accept`/`Content-Type: application/vnd.elasticsearch+json;
compatible-with=9` on every request, which an 8.x server refuses. `CompatTransport` (passed as the
client's `transport_class`) asks the server its version with a plain `application/json` request on
first use, then rewrites `compatible-with=9` to the server's major. A 9.x server sees the client's
headers untouched. The version comes from `GET _nodes/_local` (Elastic's test distribution has no
`GET /` handler), falling back to `GET /`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from elastic_transport import ApiError, HttpHeaders, Transport, TransportApiResponse

__all__ = ["CompatTransport", "parse_version"]

_COMPAT = re.compile(r"compatible-with=\d+")
_PLAIN = {"accept": "application/json"}


def parse_version(number: str) -> tuple[int, int]:
    """(major, minor) of a version string like `9.5.4` or `8.19.0-SNAPSHOT`; (0, 0) if not digits."""
    parts = [*number.split("-")[0].split("."), "0", "0"][:2]
    return (int(parts[0]), int(parts[1])) if all(p.isdigit() for p in parts) else (0, 0)


class CompatTransport(Transport):
    """A Transport that speaks the compatible-with major of the server it talks to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_version: tuple[int, int] | None = None
        self._detect_lock = threading.Lock()

    def detect(self, headers: Mapping[str, Any] | None = None) -> tuple[int, int]:
        """The server's lowest (major, minor) over its nodes, asked once (connection errors propagate).

        `headers` are a request's own (they carry the client's credentials); the media types are
        replaced by plain `application/json`, which every server major accepts.
        """
        if self.server_version is None:
            with self._detect_lock:
                if self.server_version is None:
                    plain = HttpHeaders(headers or {})
                    plain.pop("content-type", None)
                    plain.update(_PLAIN)
                    self.server_version = self._ask(plain)
        return self.server_version

    def _ask(self, headers: HttpHeaders) -> tuple[int, int]:
        try:
            resp = super().perform_request("GET", "/_nodes/_local?filter_path=nodes.*.version", headers=headers)
            if 200 <= resp.meta.status < 300:
                numbers = [str(n["version"]) for n in dict(resp.body).get("nodes", {}).values()]
                if numbers:
                    return min(parse_version(n) for n in numbers)
            resp = super().perform_request("GET", "/", headers=headers)
            if 200 <= resp.meta.status < 300:
                return parse_version(str(dict(resp.body)["version"]["number"]))
        except ApiError:
            pass
        return (0, 0)  # unknown (e.g. no monitor privilege): send the client's own headers

    def perform_request(  # type: ignore[override]
        self, method: str, target: str, *, headers: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> TransportApiResponse:
        """Send the request, with compatible-with set to the server's major when it is 8."""
        major = self.detect(headers)[0]
        if headers and major == 8:
            fixed = HttpHeaders(headers)
            for name in ("accept", "content-type"):
                if name in fixed:
                    fixed[name] = _COMPAT.sub(f"compatible-with={major}", str(fixed[name]))
            headers = fixed
        if headers is None:
            return super().perform_request(method, target, **kwargs)
        return super().perform_request(method, target, headers=headers, **kwargs)
