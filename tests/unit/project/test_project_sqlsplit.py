"""Our statement splitter (it replaced the GPL-licensed pglast at run time)."""

from __future__ import annotations

import pytest

from stream_app.storage.migrate import Flavor, available_migrations
from stream_app.storage.sqlsplit import SqlSplitError, split_statements


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 'a;b', 'it''s; fine';", ["SELECT 'a;b', 'it''s; fine'"]),
        ("SELECT E'a\\';b';", ["SELECT E'a\\';b'"]),
        ("SELECT 'a\\'; SELECT 2;", ["SELECT 'a\\'", "SELECT 2"]),  # standard strings
        ('SELECT 1 AS "x;y""z";', ['SELECT 1 AS "x;y""z"']),
        ("SELECT 1; -- one; two\nSELECT 2;", ["SELECT 1", "-- one; two\nSELECT 2"]),
        ("SELECT /* a; /* nested; */ b; */ 1;", ["SELECT /* a; /* nested; */ b; */ 1"]),
        ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;", None),
        ("DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$'; END $body$;", None),
        ("SELECT $1; SELECT a$b;", ["SELECT $1", "SELECT a$b"]),
        ("SELECT 1;\n-- trailing comment only\n/* and a block */\n", ["SELECT 1"]),
        ("  ;; \n", []),
    ],
)
def test_split(text: str, expected: list[str] | None) -> None:
    want = expected if expected is not None else [text.strip().rstrip(";")]
    assert split_statements(text) == want


@pytest.mark.parametrize("text", ["SELECT 'open", 'SELECT "open', "SELECT $$ open", "/* open"])
def test_unterminated_input_is_an_error(text: str) -> None:
    with pytest.raises(SqlSplitError):
        split_statements(text)


@pytest.mark.parametrize("flavor", list(Flavor))
def test_every_migration_splits_into_sql_statements(flavor: Flavor) -> None:
    for migration in available_migrations(flavor):
        statements = migration.statements()
        assert statements, migration.name
        for statement in statements:
            assert not statement.endswith(";")
            assert statement.split()[0].upper() in {
                "CREATE", "ALTER", "SELECT", "DROP", "INSERT", "DO", "COMMENT", "GRANT",
                "UPDATE", "DELETE", "--",
            }, statement[:80]  # fmt: skip


@pytest.mark.parametrize("flavor", list(Flavor))
def test_each_piece_is_exactly_one_statement_for_a_real_parser(flavor: Flavor) -> None:
    """pglast (a test-only dependency) parses PostgreSQL's own grammar."""
    import pglast

    for migration in available_migrations(flavor):
        ours = migration.statements()
        assert len(ours) == len(pglast.split(migration.text)), migration.name
        for statement in ours:
            assert len(pglast.parse_sql(statement)) == 1, statement[:80]
