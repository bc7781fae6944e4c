"""A polite JSON-over-HTTP client for the infini-gram servers.

One requests Session; urllib3 Retry with exponential backoff on 403 (the gateway's throttle), 429, 5xx and
connection errors; a client-side rate limit shared by all threads; a bound on requests in flight. Errors that
happen after the status line (a connection reset mid-body, a body that is not JSON) are retried here, since
urllib3 has already handed the response over by then.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from .base import QueryFailed

RETRY_STATUSES = (403, 429, 500, 502, 503, 504)


@dataclass
class HttpSettings:
    rate: float = 2.0                # requests per second, all threads together (<= 0: unlimited)
    concurrency: int = 2             # requests in flight at most
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # urllib3 retries per request (status and connection errors). Backoff 0, 2, 4, ... 60 s: about two minutes
    # in all, longer than the ~1 minute the public gateway's 403 throttle was seen to last.
    retries: int = 7
    backoff: float = 1.0             # exponential backoff factor, seconds
    backoff_max: float = 60.0
    body_retries: int = 2            # extra attempts after a broken or non-JSON body


class RateLimiter:
    """Spaces request starts at least 1/rate seconds apart, across threads."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class JsonClient:
    """POST a JSON payload, get the JSON answer back or a QueryFailed with a one-line reason."""

    def __init__(self, url: str, settings: HttpSettings | None = None):
        self.url = url
        self.settings = s = settings or HttpSettings()
        retry = Retry(
            total=s.retries, connect=s.retries, read=s.retries, status=s.retries, other=0,
            backoff_factor=s.backoff, backoff_max=s.backoff_max, status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),  # POST is safe here: every query is read-only
            raise_on_status=False, respect_retry_after_header=True,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=max(1, s.concurrency))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "fpprov (fixed-point provenance)"
        self._slots = threading.BoundedSemaphore(max(1, s.concurrency))
        self._limiter = RateLimiter(s.rate)
        self._count_lock = threading.Lock()
        self.requests = 0  # logical requests sent (urllib3's own retries not counted)

    def _send(self, method: str, payload: dict[str, Any] | None) -> requests.Response:
        s = self.settings
        with self._slots:
            self._limiter.wait()
            with self._count_lock:
                self.requests += 1
            response = self.session.request(method, self.url, json=payload,
                                            timeout=(s.connect_timeout, s.read_timeout))
            _ = response.content  # read the body inside the slot: a reset mid-body surfaces here
            return response

    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        last_reason = "no attempt"
        for attempt in range(s.body_retries + 1):
            if attempt:
                time.sleep(min(s.backoff_max, s.backoff * 2 ** attempt))
            try:
                response = self._send("POST", payload)
            except requests.exceptions.Timeout:
                last_reason = f"timed out after {s.read_timeout:g}s"
                continue
            except requests.exceptions.RetryError as exc:
                last_reason = f"gave up after {s.retries} retries: {_short(exc, self.url)}"
                break
            except requests.exceptions.ChunkedEncodingError as exc:  # broken mid-body: urllib3 cannot retry it
                last_reason = f"connection error: {_short(exc, self.url)}"
                continue
            except requests.exceptions.ConnectionError as exc:
                last_reason = f"connection error: {_short(exc, self.url)}"
                if exc.args and isinstance(exc.args[0], MaxRetryError):
                    break  # urllib3 has already spent its retries (and backoff) on this one
                continue
            try:
                data = json.loads(response.content.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                last_reason = f"HTTP {response.status_code}: malformed JSON answer: {response.content[:80]!r}"
                if response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                    continue  # a truncated or garbled body: worth another try
                break
            if not isinstance(data, dict):
                last_reason = f"HTTP {response.status_code}: answer is not a JSON object"
                break
            # The error key first, whatever the status: validation errors come back with HTTP 200.
            if "error" in data:
                raise QueryFailed(f"HTTP {response.status_code}: {str(data['error']).splitlines()[0][:300]}")
            if response.status_code >= 400:
                raise QueryFailed(f"HTTP {response.status_code}: {response.text[:200]!r}")
            return data
        raise QueryFailed(last_reason)

    def get_json(self, timeout: float = 5.0) -> Any:
        """GET the base URL (servers may list their indexes there); None when it does not answer with JSON."""
        try:
            with self._count_lock:
                self.requests += 1
            response = requests.get(self.url, timeout=timeout)
            if response.status_code != 200:
                return None
            return response.json()
        except (requests.exceptions.RequestException, ValueError):
            return None

    def close(self) -> None:
        self.session.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _short(exc: BaseException, url: str) -> str:
    """'<host> unreachable (<cause>)' instead of urllib3's whole text (pool, url, repr of the cause)."""
    from urllib.parse import urlparse

    cause: BaseException = exc
    while cause.args and isinstance(cause.args[0], BaseException):  # requests wraps urllib3's MaxRetryError
        cause = cause.args[0]
    reason = getattr(cause, "reason", None)
    if isinstance(reason, BaseException):
        cause = reason
    if "timeout" in type(cause).__name__.lower():
        return f"{urlparse(url).netloc} timed out ({type(cause).__name__})"
    if isinstance(exc, requests.exceptions.RetryError) or "too many" in str(cause).lower():
        return f"{urlparse(url).netloc} kept failing ({type(cause).__name__})"
    return f"{urlparse(url).netloc} unreachable ({type(cause).__name__})"


def require(data: dict[str, Any], *fields: str) -> None:
    """A well-formed answer that lacks a field is a failed query, never a zero."""
    missing = [f for f in fields if f not in data]
    if missing:
        raise QueryFailed(f"answer lacks field(s) {', '.join(missing)}")
