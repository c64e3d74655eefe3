"""The little WSGI plumbing the PanDA services share: reading a bounded body as a form
or JSON, answering JSON, and turning bad input into a 4xx with a JSON error before
anything reaches the database."""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pandafacility import safejson

StartResponse = Callable[..., Any]
MAX_BODY = 8 * 1024 * 1024  # bytes; a submission of many jobs fits, a runaway does not
GZIP_MAGIC = b"\x1f\x8b"


class HttpError(Exception):
    """Answer the request with this status and a JSON error; nothing was stored."""

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Request:
    environ: dict[str, Any]
    max_body: int = MAX_BODY
    _body: bytes | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", "") or "/")

    @property
    def remote_addr(self) -> str:
        return str(self.environ.get("REMOTE_ADDR", ""))

    def body(self) -> bytes:
        """The body, read once (bounded, gunzipped when it is gzip)."""
        if self._body is None:
            self._body = self._read()
        return self._body

    def _read(self) -> bytes:
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError as exc:
            raise HttpError(400, "Content-Length is not a number") from exc
        if length < 0:
            raise HttpError(400, "Content-Length is negative")
        if length > self.max_body:
            raise HttpError(413, f"body of {length} bytes is over the limit of {self.max_body}")
        data = self.environ["wsgi.input"].read(length) if length else b""
        # Declared (Content-Encoding: gzip, pilot 3.12 and Harvester), or not: pilots 3.8
        # to 3.11 send gzip-compressed JSON as application/json with no Content-Encoding,
        # which upstream accepts by the gzip magic. No form or JSON body starts so.
        declared = str(self.environ.get("HTTP_CONTENT_ENCODING", "")).lower() == "gzip"
        if declared or data[:2] == GZIP_MAGIC:
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(data)) as z:
                    data = z.read(self.max_body + 1)
            except (OSError, EOFError) as exc:
                raise HttpError(400, "body is not valid gzip") from exc
            if len(data) > self.max_body:
                raise HttpError(413, "decompressed body is over the limit")
        return data

    def query(self, key: str) -> list[str]:
        """Every value of ``key`` in the query string (``?k=1&k=2``: upstream's lists)."""
        return parse_qs(str(self.environ.get("QUERY_STRING", ""))).get(key, [])

    def form(self) -> dict[str, str]:
        """Form fields (query string and a form-encoded body), last value wins. A JSON
        object body (pilots 3.8 to 3.11 send their legacy calls as gzip-compressed JSON)
        gives its fields as the form would: scalars as text, true/false as upstream
        turned them, True/False."""
        fields = _flat(parse_qs(str(self.environ.get("QUERY_STRING", "")), keep_blank_values=True))
        if self.method == "POST":
            data = self.body()
            ctype = str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
            if ctype == "application/json" or data[:1] == b"{":
                value = self.json()
                fields.update({str(k): _form_value(v) for k, v in value.items()})
                return fields
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HttpError(400, "form body is not UTF-8") from exc
            fields.update(_flat(parse_qs(text, keep_blank_values=True, strict_parsing=False)))
        return fields

    def json(self) -> dict[str, Any]:
        """The JSON object in the body (an empty body is an empty object)."""
        data = self.body()
        if not data:
            return {}
        try:
            value = safejson.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise HttpError(400, "body must be a JSON object")
        return value


def _form_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return str(value)
    return json.dumps(value)


def _flat(values: dict[str, list[str]]) -> dict[str, str]:
    return {key: items[-1] for key, items in values.items()}


def respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    content_type: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    start_response(
        f"{status} {REASONS.get(status, 'Unknown')}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def respond_json(
    start_response: StartResponse,
    value: Any,
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = json.dumps(value, default=_json_default).encode()
    return respond(start_response, status, body, "application/json", headers)


def _json_default(value: Any) -> Any:
    """Datetimes travel as ISO text; anything else unknown is a bug, said plainly."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def integer(fields: dict[str, Any], key: str, default: int | None = None) -> int:
    """A required (or defaulted) integer field; anything else is a 400 naming it."""
    value = fields.get(key, default)
    if value is None or value == "":
        raise HttpError(400, f"{key} is required")
    if isinstance(value, bool):
        raise HttpError(400, f"{key} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise HttpError(400, f"{key} must be an integer, not {str(value)[:40]!r}") from exc


def text(fields: dict[str, Any], key: str, default: str | None = None, limit: int = 255) -> str:
    """A required (or defaulted) string field of bounded length."""
    value = fields.get(key, default)
    if value is None:
        raise HttpError(400, f"{key} is required")
    if not isinstance(value, str):
        raise HttpError(400, f"{key} must be a string")
    if len(value) > limit:
        raise HttpError(400, f"{key} is longer than {limit} characters")
    return value


def lazy_application(
    config_env: str, build: Callable[[Path], Callable[..., list[bytes]]]
) -> Callable[[dict[str, Any], StartResponse], list[bytes]]:
    """A WSGI entry point that builds its application once per process, on the first
    request, from the settings file named by ``config_env`` (Apache's SetEnv puts it in
    the request's environ; a plain environment variable works too)."""
    built: list[Callable[..., list[bytes]]] = []
    lock = threading.Lock()

    def application(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if not built:
            with lock:
                if not built:
                    built.append(build(Path(environ.get(config_env) or os.environ[config_env])))
        return built[0](environ, start_response)

    return application
