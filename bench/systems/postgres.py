"""What the PostgreSQL peers share: the server's URL and schema housekeeping."""

from __future__ import annotations

DSN = "postgresql://postgres@127.0.0.1:5432/test"


def schema_url(schema: str) -> str:
    """``DSN`` with ``schema`` as the search_path of every session."""
    return f"{DSN}?options=-csearch_path%3D{schema}"


def execute(*statements: str) -> None:
    """Run ``statements`` in autocommit, from the orchestrator."""
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def fresh_schema(schema: str, create: bool = True) -> None:
    """Drop ``schema`` with all it holds, and (``create``) make it anew, empty."""
    execute(
        f"DROP SCHEMA IF EXISTS {schema} CASCADE", *([f"CREATE SCHEMA {schema}"] if create else [])
    )
