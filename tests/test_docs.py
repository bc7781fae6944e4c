"""The documentation is a user interface: docs/schema.md is generated from the database's own comments (COMMENT ON
in the migrations and views.sql) and describes every table, view and column; every SQL example of the docs runs;
the Python API page runs as a notebook would; links resolve; the README's layout names every module."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from fpprov.db.schema_docs import relations, render, split_comment
from fpprov.db.store import open_store
from report_db import build_report_db

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = ("scan.md", "vectors.md", "provenance.md", "reports.md", "schema.md", "python-api.md", "development.md")


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _statements(sql: str) -> list[str]:
    """The statements of one ```sql block (each ends with ';' at the end of a line)."""
    return [s for s in re.split(r";\s*$", sql, flags=re.M) if re.sub(r"--.*$", "", s, flags=re.M).strip()]


def _sources_have_rows(store, statement: str) -> bool:
    """Whether every table/view the statement reads (FROM, JOIN) has rows in the docs database, counting only
    the rows that match the statement's equality filters on string literals (WHERE model = '...', p.text = '...')
    for the columns the relation has."""
    sources = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", statement, re.I))
    if not sources:
        return False
    filters = re.findall(r"\b(?:\w+\.)?(\w+)\s*=\s*'([^']*)'", statement)
    for source in sources:
        columns = {row[0] for row in store.query(f"DESCRIBE {source}")}
        kept = [(column, value) for column, value in filters if column in columns]
        where = " WHERE " + " AND ".join(f'"{column}" = ?' for column, _ in kept) if kept else ""
        if not store.query(f"SELECT count(*) FROM {source}{where}", [v for _, v in kept] or None)[0][0]:
            return False
    return True


def _schema_sections(text: str) -> dict[str, dict[str, str]]:
    """Object name -> {column: meaning} from the `### \\`name\\`` sections of schema.md and their tables."""
    sections = {}
    for match in re.finditer(r"^### `(\w+)`\n(.*?)(?=^##|\Z)", text, re.M | re.S):
        rows = re.findall(r"^\| `(\w+)` \| [^|]* \| (.*) \|$", match.group(2), re.M)
        sections[match.group(1)] = {name: meaning.strip() for name, meaning in rows}
    return sections


def test_every_docs_page_exists_and_the_readme_links_it():
    readme = README.read_text("utf-8")
    for page in PAGES:
        assert (DOCS / page).is_file(), f"docs/{page} is missing"
        assert f"(docs/{page})" in readme, f"README does not link docs/{page}"


def test_schema_md_is_what_the_database_comments_generate():
    current = (DOCS / "schema.md").read_text("utf-8")
    assert current == render(), "docs/schema.md is stale: run python -m fpprov.db.schema_docs --write docs/schema.md"


def test_every_table_view_and_column_is_described(tmp_path):
    """In the database itself (a COMMENT ON for every table, view and column) and in docs/schema.md."""
    described = _schema_sections((DOCS / "schema.md").read_text("utf-8"))
    with open_store(tmp_path / "fresh.duckdb") as store:   # every migration applied, then views.sql
        names = [row[0] for row in store.query(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main' UNION ALL "
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main'")]
        assert {"schema_version", "models", "scans", "token_fps", "vector_fps", "ngram_counts", "shared_fps",
                "suspicious_tokens"} <= set(names)
        uncommented = [row[0] for row in store.query(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main' AND "
            "coalesce(trim(comment), '') = '' UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal "
            "AND schema_name = 'main' AND coalesce(trim(comment), '') = ''")]
        assert not uncommented, f"tables or views without a COMMENT ON: {uncommented}"
        for name in names:
            columns = store.query("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'main' "
                                  "AND table_name = ? ORDER BY column_index", [name])
            missing = [c for c, comment in columns if not (comment or "").strip()]
            assert not missing, f"{name}: columns without a COMMENT ON {missing}"
            assert name in described, f"docs/schema.md has no section for {name}"
            missing = [c for c, _ in columns if not described[name].get(c)]
            assert not missing, f"{name}: columns without a description in docs/schema.md {missing}"


def test_every_sql_example_of_the_docs_runs_and_finds_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may COPY ... TO a file
    examples = [(path.name, sql) for path in _markdown_files()
                for sql in re.findall(r"```sql\n(.*?)```", path.read_text("utf-8"), re.S)]
    assert len(examples) >= 10
    assert {"scan.md", "vectors.md", "provenance.md", "reports.md", "schema.md"} <= {page for page, _ in examples}
    with open_store(build_report_db(tmp_path / "docs.duckdb")) as store:
        must_find = 0
        for page, sql in examples:
            for statement in _statements(sql):
                rows = store.query(statement)
                assert isinstance(rows, list), f"{page}: {statement}"
                if _sources_have_rows(store, statement):   # over relations with (matching) rows: finds some
                    must_find += 1
                    assert rows, f"{page}: example returned no rows although its tables have some:\n{statement}"
        assert must_find >= 10   # most examples run on populated relations of the docs database
        assert store.query("FROM base_vs_inst WHERE family = 'gemma3'")  # the examples find real rows


def test_the_python_api_page_runs_as_a_notebook(tiny_model_dir, corpus_index, one_torch_thread, tmp_path,
                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_dir = tiny_model_dir("llama")
    index_dir, _ = corpus_index(11)
    page = (DOCS / "python-api.md").read_text("utf-8")
    blocks = [(page[:m.start(1)].count("\n"), m.group(1)) for m in re.finditer(r"```python\n(.*?)```", page, re.S)]
    assert len(blocks) >= 4
    code = "\n".join(block for _, block in blocks)
    for name in ("scan_vocabulary", "run_provenance", "build_reports", "duckdb.connect", "per_model"):
        assert name in code
    assert '"gemma3-270m"' in code and '"demo-index"' in code
    namespace: dict = {}
    for line, block in blocks:   # one cell at a time, in order; tracebacks point at the page's own lines
        block = block.replace('"gemma3-270m"', repr(str(model_dir))).replace('"demo-index"', repr(str(index_dir)))
        exec(compile("\n" * line + block, str(DOCS / "python-api.md"), "exec"), namespace)
    scan, summary, outcome = namespace["scan"], namespace["summary"], namespace["outcome"]
    assert scan.complete and scan.fp_count > 0
    assert summary.failed == 0 and summary.ok > 0 and summary.docs_fetched > 0
    assert (tmp_path / "reports" / "index.html").is_file() and outcome.index.is_file()
    assert namespace["rows"] and len(namespace["rows"]) <= 10
    assert namespace["table"].num_rows == len(namespace["rows"])
    with open_store(tmp_path / "fpprov.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM token_fps")[0][0] == scan.fp_count
        assert [r[1:] for r in namespace["rows"]] == store.query(
            "SELECT token_text, n, max(count) FROM provenance_counts WHERE status = 'ok' "
            "GROUP BY ALL ORDER BY 3 DESC, token_text LIMIT 10")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    for path in _markdown_files():
        text = re.sub(r"```.*?```", "", path.read_text("utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            assert linked.exists(), f"{path.name}: broken link {target}"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", linked.read_text("utf-8"), re.M)
                assert anchor in {_slug(h) for h in headings}, f"{path.name}: no heading for {target}"


def _layout_entries() -> list[str]:
    section = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", README.read_text("utf-8"), re.M | re.S)
    assert section, "README has no Layout section"
    entries: list[str] = []
    for line in section.group(1).splitlines():
        if line.startswith("- "):
            entries.append(line)
        elif line.startswith("  ") and entries:   # a bullet's continuation line
            entries[-1] += " " + line.strip()
    return entries


def _folder(entry: str) -> str | None:
    """The subpackage a layout bullet is about (``- `cli/`: ...``), else None."""
    match = re.match(r"- `(\w+)/`", entry)
    return match.group(1) if match else None


def test_the_readme_layout_names_every_module():
    entries = _layout_entries()
    package = ROOT / "fpprov"
    unnamed = []
    for module in sorted(package.rglob("*.py")):
        rel = module.relative_to(package)
        if len(rel.parts) == 1:   # a top-level module: named outside the bullets of subpackages
            if not any(f"`{rel.name}`" in entry for entry in entries if not _folder(entry)):
                unnamed.append(str(rel))
            continue
        top = f"`{rel.parts[0]}/`"
        lines = [entry for entry in entries if top in entry]
        inner = "/".join(rel.parts[1:])
        if not lines or (rel.name != "__init__.py" and not any(f"`{inner}`" in entry for entry in lines)):
            unnamed.append(str(rel))
    assert not unnamed, f"README's layout does not name {unnamed}"


def test_the_readme_layout_names_only_modules_that_exist():
    package = ROOT / "fpprov"
    stale = []
    for entry in _layout_entries():
        folder = _folder(entry)
        for name in re.findall(r"`([\w/]+\.py)`", entry):
            path = package / name if "/" in name or not folder else package / folder / name
            if not path.is_file():
                stale.append(name)
    assert not stale, f"README's layout names modules that do not exist: {stale}"


@pytest.mark.parametrize("page", PAGES)
def test_each_page_starts_with_a_title(page):
    lines = (DOCS / page).read_text("utf-8").splitlines()
    titles = [line for line in lines[:5] if line.startswith("# ")]
    assert len(titles) == 1, f"docs/{page} needs one '# ' title at the top"


def test_a_comment_splits_into_its_description_and_its_examples():
    assert split_comment(None) == ("", [])
    assert split_comment("Things.") == ("Things.", [])
    assert split_comment("Things, one a row. Example: SELECT a\n    FROM t; Example: FROM t;") == (
        "Things, one a row.", ["SELECT a\nFROM t;", "FROM t;"])


def test_duckdb_keeps_comments_on_view_columns_and_a_replaced_view_loses_them():
    """What views.sql relies on (measured on DuckDB 2.0.1): COMMENT ON COLUMN works on a view's columns and
    duckdb_columns() reads it back; CREATE OR REPLACE VIEW drops the view's comments, so they follow it."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b VARCHAR)")
    con.execute("COMMENT ON TABLE t IS 'A table. Example: FROM t;'")
    con.execute("COMMENT ON COLUMN t.a IS 'the key'")
    con.execute("CREATE OR REPLACE VIEW v AS SELECT a, b AS c FROM t")
    con.execute("COMMENT ON VIEW v IS 'A view.'")
    con.execute("COMMENT ON COLUMN v.c IS 'b, renamed'")
    found = relations(con)
    assert [(r.name, r.kind, r.description, r.examples, r.key) for r in found.values()] == [
        ("t", "table", "A table.", ["FROM t;"], ["Key: (`a`)"]), ("v", "view", "A view.", [], [])]
    assert [(c.name, c.type, c.description) for c in found["v"].columns] == [("a", "INTEGER", ""),
                                                                            ("c", "VARCHAR", "b, renamed")]
    con.execute("CREATE OR REPLACE VIEW v AS SELECT a, b AS c FROM t")
    assert con.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'v'").fetchall() == [(None,)]
    assert con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'v' AND column_name = 'c'"
                       ).fetchall() == [(None,)]


def test_every_package_ships_in_a_wheel():
    # setuptools installs only the packages pyproject lists: a package left out works in the editable checkout and
    # is missing from an installed copy.
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fpprov").rglob("__init__.py")}
    assert found - listed == set()
