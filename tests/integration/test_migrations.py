"""Schema migrations on SQLite and PostgreSQL: down to the base and back up, and up from every earlier revision."""

import time

import pytest
from alembic import command
from alembic.config import Config
from kitaru_server import KitaruService
from kitaru_server.db import _MIGRATIONS, HEAD_REVISION
from sqlalchemy import create_engine, inspect, text

REVISIONS = sorted(path.name.split("_", 1)[0] for path in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def migrate(url, action, target):
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, target)
    finally:
        engine.dispose()


def revision_and_tables(url):
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            revision = (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if "alembic_version" in tables else None
            )
    finally:
        engine.dispose()
    return revision, tables - {"alembic_version"}


def test_revisions_are_numbered_in_sequence():
    assert REVISIONS == [f"{n:04d}" for n in range(1, len(REVISIONS) + 1)] and REVISIONS[-1] == HEAD_REVISION


def test_downgrade_to_base_then_upgrade_to_head(database_url):
    service = KitaruService(database_url)
    service.close()
    revision, tables = revision_and_tables(database_url)
    assert revision == HEAD_REVISION and {"executions", "api_keys", "waits"} <= tables
    migrate(database_url, "downgrade", "base")
    assert revision_and_tables(database_url) == (None, set())
    migrate(database_url, "upgrade", "head")
    assert revision_and_tables(database_url) == (HEAD_REVISION, tables)
    service = KitaruService(database_url)
    key = service.create_api_key("after-migrations", admin=True)
    assert service.verify_api_key(key["key"])["name"] == "after-migrations"
    service.close()


@pytest.mark.parametrize("start", REVISIONS[:-1])
def test_upgrade_from_every_earlier_revision_keeps_the_data(database_url, start):
    migrate(database_url, "upgrade", start)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO executions (exec_id, flow, flow_ref, status, created_at, metadata, settings, run_attempt) "
                "VALUES ('old', 'f', 'm:f', 'completed', :now, '{}', '{}', 1)"
            ),
            {"now": time.time()},
        )
        digest = "sha256" if start < "0008" else "digest"  # 0008 renamed the column (its algorithm defaults to sha256)
        conn.execute(
            text(
                f"INSERT INTO artifacts (artifact_id, exec_id, name, kind, uri, {digest}, size, serializer, type_path, tags, "
                "created_at) VALUES ('a1', 'old', 'out', 'output', 'file:///x', 'ab', 7, 'json', 'builtins:int', '[]', 1.0)"
            )
        )
    engine.dispose()
    service = KitaruService(database_url)  # the service migrates an older database on start
    assert service.get_execution("old")["status"] == "completed"
    old_artifact = service.get_artifact("a1")
    assert old_artifact["size"] == 7
    assert (old_artifact["digest"], old_artifact["digest_algorithm"]) == ("ab", "sha256")  # written before BLAKE3
    assert revision_and_tables(database_url)[0] == HEAD_REVISION
    service.close()
