"""Helpers that several test modules share (a test module never imports another test module): an HTML page
parser for the reports, a scan's stored rows and an uninterrupted scan to compare them with, and HTTP settings
that make the test server's retries fast."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import duckdb

from fpprov.corpus.http import HttpSettings


class Page(HTMLParser):
    """Elements, attributes, visible text, inline scripts and JSON blocks of one page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_script: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "script":
            self._in_script = attrs
            self.scripts.append((attrs, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return "".join(self.text)

    @property
    def ids(self) -> set[str]:
        """The id of every element: section anchors and data tables ('table-NAME')."""
        return {attrs["id"] for _, attrs in self.tags if attrs.get("id")}

    def json_blocks(self) -> list:
        return [json.loads(body) for attrs, body in self.scripts if attrs.get("type") == "application/json"]


def read(path: Path) -> str:
    return path.read_text("utf-8")


FP_COLUMNS = ("model, token_id, raw_token, text, norm_text, category, prob, logit, runner_up_id, runner_up_logit,"
              " margin, verified_float64, margin_float64, length_check")


def scan_rows(db: Path) -> list[tuple]:
    """Every stored token FP of a database, in id order (what an interrupted and resumed scan must equal)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT {FP_COLUMNS} FROM token_fps ORDER BY token_id").fetchall()
    finally:
        con.close()


def uninterrupted_scan(model_dir: Path, db: Path, commit_every: int = 40, batch_size: int = 16) -> list[tuple]:
    """Scan the model in one go into a fresh database; its rows (``scan_rows``)."""
    from fpprov.db.store import open_store
    from fpprov.models import load_model
    from fpprov.scan.run import ScanOptions, scan_vocabulary

    with open_store(db) as store:
        options = ScanOptions(commit_every=commit_every, batch_size=batch_size)
        scan_vocabulary(load_model(str(model_dir)), store, options)
    return scan_rows(db)


# HTTP settings for runs against tests/infinigram_server.py: no rate limit, short timeouts and backoffs.
FAST_HTTP = HttpSettings(rate=0, concurrency=2, backoff=0.01, backoff_max=0.05, read_timeout=2.0, retries=2,
                         body_retries=1)
