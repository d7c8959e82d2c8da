"""The benchmarks' scratch PostgreSQL databases: where the server is, and making or dropping one.

BENCH_PG names the server (default: the local one, trust auth, user postgres); each benchmark
owns one database on it, recreated empty at the start and dropped at the end unless kept.
"""

import os


def admin_url() -> str:
    """The server's address without a database name."""
    return os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def database_url(name: str) -> str:
    return f"{admin_url()}/{name}"


def recreate_database(name: str) -> None:
    """Drop `name` (disconnecting anyone) and create it empty."""
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
