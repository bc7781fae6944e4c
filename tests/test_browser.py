"""The reports in a real browser: headless Chromium (Debian's `chromium`) driven over the DevTools protocol
on a pipe (no extra Python package). Data full of scripts must stay text: no script from the data runs,
the text is visible, the tables' own script works, and a screenshot is saved.

Screenshots go to $FPPROV_SCREENSHOT_DIR, else reports/screenshots/ in the repository (ignored by git).
Without chromium the tests are skipped, except when $CI is set: there they fail.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fpprov.report import build_reports
from report_db import HOSTILE_INDEX, HOSTILE_SOURCE, build_report_db

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SCREENSHOT_DIR = Path(os.environ.get("FPPROV_SCREENSHOT_DIR") or Path(__file__).resolve().parent.parent / "reports" / "screenshots")


class Chromium:
    """Minimal DevTools client over --remote-debugging-pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, profile: Path):
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1280,2000", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{cmd_read} 4>&{out_write}', "chromium", *args],
            pass_fds=(cmd_read, out_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_read)
        os.close(out_write)
        self._buffer, self._next_id, self.events = b"", 0, []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._out_read], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._out_read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._cmd_write)
        os.close(self._out_read)


class Tab:
    def __init__(self, browser: Chromium, url: str):
        self.browser = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=self.session)
        browser.call("Page.navigate", {"url": url}, session=self.session)
        browser.wait_event("Page.loadEventFired")

    def eval(self, expression: str):
        result = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                   session=self.session)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        shot = self.browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                 session=self.session, timeout=60)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def console_messages(self) -> list[str]:
        texts = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            if event.get("method") == "Log.entryAdded":
                texts.append(event["params"]["entry"].get("text", ""))
            elif event.get("method") == "Runtime.consoleAPICalled":
                texts.append(" ".join(str(a.get("value")) for a in event["params"]["args"]))
            elif event.get("method") == "Runtime.exceptionThrown":
                texts.append(json.dumps(event["params"]["exceptionDetails"]))
        return texts


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        # CI installs chromium (.ci/run): there a missing browser is a failure, not a reason to skip
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    db = build_report_db(folder / "results.duckdb", evidence=True)
    return build_reports(db, folder / "reports", page_size=10).index.parent


@pytest.mark.parametrize("page", ["gemma3-270m.html", "index.html", "shared.html"])
def test_no_script_from_the_data_runs_and_the_text_is_visible(browser, report_dir, page):
    tab = Tab(browser, (report_dir / page).as_uri())
    assert tab.eval("document.documentElement.getAttribute('data-tables-ready')") == "1"   # our script ran
    assert tab.eval("document.documentElement.getAttribute('data-pwned')") is None          # theirs did not
    assert tab.eval("document.querySelectorAll('img, iframe, object, embed, [onerror], [onmouseover]').length") == 0
    assert tab.eval("document.querySelectorAll('script:not([type=\"application/json\"])').length") == 1
    messages = tab.console_messages()
    assert not [m for m in messages if "Content Security Policy" in m or "pwned" in m], messages
    text = tab.eval("document.body.innerText")
    if page == "gemma3-270m.html":
        for shown in ("<script>document.documentElement.setAttribute('data-pwned','script')</script>",
                      "nul\\0byte", "esc\\x1b[31mred\\x07bell", "\\u202eevil\\u202c", "bad\\ufffd(utf8",
                      "Tom\u2423&\u2423Jerry\u2423&amp;\u2423co"):
            assert shown in text, shown
        assert "\u202e" not in text and "\x00" not in text
        # the evidence section: a hostile index name in headings, tables and SVG labels, a hostile source in
        # the enrichment table and the forest chart, all as text
        assert text.count(HOSTILE_INDEX) >= 2 and HOSTILE_SOURCE in text
        svg_text = tab.eval("[...document.querySelectorAll('svg title, svg text')].map(t => t.textContent).join('|')")
        assert HOSTILE_SOURCE in svg_text and tab.eval("document.querySelectorAll('svg script').length") == 0
        assert tab.eval("[...document.querySelectorAll('svg')].map(s => s.getAttribute('aria-label'))"
                        ".filter(l => l.includes('share of tokens with any')).length") == 2
        # every corpus here is a proxy, and the page says so where it names one
        assert tab.eval("document.querySelectorAll('.proxy-label').length") >= 2
        assert tab.eval("document.querySelectorAll('.training-label').length") == 0
        # the highlighted snippet keeps its hostile markup as text
        assert tab.eval("[...document.querySelectorAll('mark')].map(m => m.textContent).join('|')").startswith("BLAH" * 10)
        path = tab.screenshot(SCREENSHOT_DIR / "gemma3-270m-hostile.png")
        assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {path}")
    if page == "shared.html":
        # statistics from too few tokens are greyed, never shaded as a finding; proxies are labelled
        assert tab.eval("document.querySelectorAll('td.few').length") >= 1
        assert tab.eval("[...document.querySelectorAll('td.few')].every(td => "
                        "getComputedStyle(td).backgroundColor === 'rgb(243, 244, 246)')")
        assert tab.eval("document.querySelectorAll('td .proxy-label').length") >= 1
        assert HOSTILE_INDEX in text                                    # a column of the attribution matrix
        assert tab.eval("document.querySelectorAll('td.best').length") == 1
    if page == "index.html":
        assert 'evil/<b>model</b>"\'&' in text
        # the findings block comes first, names every corpus a proxy and greys what rests on too few tokens
        assert tab.eval("document.getElementById('findings').getBoundingClientRect().top < "
                        "document.getElementById('table-seed').getBoundingClientRect().top")
        assert tab.eval("document.querySelectorAll('#findings li.finding').length") >= 6
        assert tab.eval("document.querySelectorAll('#findings li[data-kind=effect] .proxy-label').length") == \
            tab.eval("document.querySelectorAll('#findings li[data-kind=effect]').length") >= 3
        assert tab.eval("document.querySelectorAll('#findings .training-label').length") == 0
        assert tab.eval("getComputedStyle(document.querySelector('#findings .proxy-label')).color") == "rgb(146, 64, 14)"
        few = "[...document.querySelectorAll('#findings li.few')]"
        assert tab.eval(f"{few}.length") >= 1
        assert tab.eval(f"{few}.every(li => getComputedStyle(li).color === 'rgb(156, 163, 175)')")
        assert tab.eval(f"{few}.some(li => li.dataset.model === 'olmo2-1b' && li.dataset.effect === 'too few to say')")
        assert tab.eval("document.querySelectorAll('#findings svg rect').length") >= 2     # the shares chart
        tab.screenshot(SCREENSHOT_DIR / "index.png")


def test_tables_filter_sort_and_page(browser, report_dir):
    tab = Tab(browser, (report_dir / "gemma3-270m.html").as_uri())
    box = "document.getElementById('table-fps')"
    assert tab.eval(f"{box}.querySelectorAll('tbody tr').length") == 10            # page_size=10 of 14 rows
    assert "14 of 14 rows, page 1 of 2" in tab.eval(f"{box}.querySelector('.dt-info').textContent")
    tab.eval(f"{box}.querySelectorAll('button')[1].click()")                        # next page
    assert tab.eval(f"{box}.querySelectorAll('tbody tr').length") == 4
    tab.eval(f"var f = {box}.querySelector('input'); f.value = 'ONMOUSE'; f.dispatchEvent(new Event('input'))")
    rows = tab.eval(f"[...{box}.querySelectorAll('tbody tr')].map(r => r.cells[1].textContent)")
    assert rows == ['"\u2423onmouseover="alert(1)"\u2423\'q\'']
    tab.eval(f"var f = {box}.querySelector('input'); f.value = ''; f.dispatchEvent(new Event('input'))")
    tab.eval(f"{box}.querySelectorAll('th')[4].click()")                            # p(t|t): first click = descending
    probs = tab.eval(f"[...{box}.querySelectorAll('tbody tr')].map(r => parseFloat(r.cells[4].textContent))")
    assert probs == sorted(probs, reverse=True) and len(probs) == 10
    tab.eval(f"{box}.querySelectorAll('th')[4].click()")
    probs = tab.eval(f"[...{box}.querySelectorAll('tbody tr')].map(r => parseFloat(r.cells[4].textContent))")
    assert probs == sorted(probs) and probs[0] == 0.05
    assert tab.eval("document.documentElement.getAttribute('data-pwned')") is None


def test_an_fps_snippets_link_filters_the_snippets_table_to_that_fp(browser, report_dir):
    tab = Tab(browser, (report_dir / "gemma3-270m.html").as_uri())
    snippets = "document.getElementById('table-snippets')"
    ids = f"[...{snippets}.querySelectorAll('tbody tr')].map(r => r.cells[0].textContent)"
    assert len(set(tab.eval(ids))) > 1                                   # the FP's and a control's snippets
    tab.eval("document.querySelector('#table-topevidence a[data-filter=\"id=100\"]').click()")
    assert set(tab.eval(ids)) == {"100"}
    assert tab.eval(f"{snippets}.querySelector('input').value") == "id=100"


def test_script_renders_cells_exactly_like_the_server(browser, report_dir):
    """The first page is HTML from Python, later pages come from table.js: both must show the same text."""
    import html as html_module
    import re

    for page, table_id in (("gemma3-270m.html", "fps"), ("gemma3-270m.html", "vectors"),
                           ("gemma3-270m.html", "provenance"), ("gemma3-270m.html", "snippets"),
                           ("gemma3-270m.html", "flags"), ("gemma3-270m.html", "evidence"),
                           ("gemma3-270m.html", "topevidence"), ("gemma3-270m.html", "sources"),
                           ("gemma3-270m.html", "evidence-1-sources"), ("index.html", "seed"), ("index.html", "models"),
                           ("index.html", "suspicious"), ("shared.html", "shared"), ("shared.html", "bvi")):
        source = (report_dir / page).read_text("utf-8")
        block = source[source.index(f'<div class="dt" id="table-{table_id}">'):]
        body = block[block.index("<tbody>"):block.index("</tbody>")]
        server = [[html_module.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
                  for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
        tab = Tab(browser, (report_dir / page).as_uri())
        dom = tab.eval(f"[...document.getElementById('table-{table_id}').querySelectorAll('tbody tr')]"
                       ".map(r => [...r.cells].map(c => c.textContent))")
        assert server and dom == server, (page, table_id)


def test_number_format_matches_between_python_and_table_js(browser, report_dir):
    import re
    from importlib import resources

    from fpprov.report.text import number

    script = resources.files("fpprov.templates").joinpath("table.js").read_text("utf-8")
    fmt = re.search(r"function fmt\(v, d\) \{.*?\n  \}", script, re.S).group(0)
    values = [0.03125, -0.03125, 1.5e-7, 9.996e-5, 2.5e9, 12345.678, 0.999999, 1.000008, 0.5, 1.125e-7, 1e-5,
              123456.5, 3, 0, 1234567, 0.1 + 0.2, 2 / 3, 1e21, 10**16, -7.25e-12, 999999999.99996]
    tab = Tab(browser, (report_dir / "index.html").as_uri())
    for digits in (0, 1, 3, 4, 6):
        in_js = tab.eval(f"(function () {{ {fmt}; return {json.dumps(values)}.map(v => fmt(v, {digits})); }})()")
        assert in_js == [number(v, digits) for v in values], digits


def test_validation_page_renders_its_chart_without_console_errors(browser, tmp_path):
    from validation_db import DOSES, add_study

    db = add_study(build_report_db(tmp_path / "results.duckdb", evidence=True))
    out = build_reports(db, tmp_path / "reports", page_size=10).index.parent
    tab = Tab(browser, (out / "validation.html").as_uri())
    assert tab.eval("document.documentElement.getAttribute('data-tables-ready')") == "1"
    assert tab.eval("document.querySelectorAll('svg .dose-point[data-role=planted]').length") == len(DOSES)
    assert tab.eval("document.querySelector('svg .dose-point').getBoundingClientRect().width") > 0
    assert tab.eval("document.querySelectorAll('td[data-top=\"1\"]').length") == 2
    assert tab.console_messages() == []
    index = Tab(browser, (out / "index.html").as_uri())
    assert index.eval("document.querySelector('#validation-link a').getAttribute('href')") == "validation.html"
    tab.screenshot(SCREENSHOT_DIR / "validation.png")
    # the study's tables and the flag reasons' links: table.js shows what the server wrote
    import html as html_module
    import re

    for page, table_id in (("validation.html", "vdose"), ("validation.html", "vsensitivity"),
                           ("validation.html", "vfalse"), ("validation.html", "vnatural"),
                           ("gemma3-270m.html", "flags")):
        source = (out / page).read_text("utf-8")
        block = source[source.index(f'<div class="dt" id="table-{table_id}">'):]
        body = block[block.index("<tbody>"):block.index("</tbody>")]
        server = [[html_module.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
                  for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
        dom = Tab(browser, (out / page).as_uri()).eval(
            f"[...document.getElementById('table-{table_id}').querySelectorAll('tbody tr')]"
            ".map(r => [...r.cells].map(c => c.textContent))")
        assert server and dom == server, (page, table_id)
