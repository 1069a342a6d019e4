"""psycopg 3 through the safe-migrations proxy, run by tests/tests/tool_psycopg.rs.

    driver_checks.py URL unguarded|guarded

Ordinary queries (simple and extended protocol, binary), transactions (commit, rollback,
nested savepoints), COPY in and out, server-side prepared statements, pipeline mode and
cancel (legacy and libpq 17 cancel), for the role in URL; for a guarded role also the
refusal of unsafe DDL as a psycopg exception with the rule's SQLSTATE and fields. Prints
one line per check and exits non-zero on the first failure.
"""
import logging
import sys
import threading
import time

import psycopg
from psycopg import errors

URL, ROLE_KIND = sys.argv[1], sys.argv[2]
TABLE = f"psycopg_{ROLE_KIND}"


def connect(**kwargs):
    return psycopg.connect(URL, **kwargs)


def ordinary_queries():
    with connect(autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, name text)")
        # No parameters: the simple query protocol, several statements in one string.
        conn.execute(f"INSERT INTO {TABLE} VALUES (1, 'one'); INSERT INTO {TABLE} VALUES (2, 'two')")
        # Parameters: the extended protocol (Parse, Bind, Describe, Execute, Sync).
        conn.execute(f"INSERT INTO {TABLE} VALUES (%s, %s)", (3, "three"))
        assert conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (3,)).fetchone() == ("three",)
        rows = conn.execute(f"SELECT id, name FROM {TABLE} ORDER BY id", binary=True).fetchall()
        assert rows == [(1, "one"), (2, "two"), (3, "three")], rows
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s)", [(4, "four"), (5, "five")])
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (5,)


def transactions():
    with connect() as conn, connect(autocommit=True) as observer:
        count = f"SELECT count(*) FROM {TABLE}"
        conn.execute(f"INSERT INTO {TABLE} VALUES (6, 'six')")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert observer.execute(count).fetchone() == (5,)
        conn.commit()
        assert observer.execute(count).fetchone() == (6,)
        conn.execute(f"INSERT INTO {TABLE} VALUES (7, 'seven')")
        conn.rollback()
        assert observer.execute(count).fetchone() == (6,)
        with conn.transaction():
            conn.execute(f"INSERT INTO {TABLE} VALUES (7, 'seven')")
            with conn.transaction() as savepoint:
                conn.execute(f"INSERT INTO {TABLE} VALUES (8, 'eight')")
                raise psycopg.Rollback(savepoint)
        assert observer.execute(f"SELECT max(id) FROM {TABLE}").fetchone() == (7,)
        try:
            conn.execute(f"INSERT INTO {TABLE} VALUES (1, 'duplicate')")
            raise AssertionError("duplicate key accepted")
        except errors.UniqueViolation:
            pass
        try:
            conn.execute("SELECT 1")
            raise AssertionError("statement ran in an aborted transaction")
        except errors.InFailedSqlTransaction:
            conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.rollback()


def copy_in_and_out():
    with connect(autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {TABLE} (id, name) FROM STDIN") as copy:
            for id in range(100, 200):
                copy.write_row((id, f"copied {id}"))
        with cur.copy(f"COPY {TABLE} FROM STDIN (FORMAT csv)") as copy:
            copy.write("200,csv row\n201,\"quoted, with comma\"\n")
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE id >= 100").fetchone() == (102,)
        with cur.copy(f"COPY (SELECT id, name FROM {TABLE} WHERE id >= 199 ORDER BY id) TO STDOUT") as copy:
            text = b"".join(bytes(block) for block in copy).decode()
        assert text == "199\tcopied 199\n200\tcsv row\n201\tquoted, with comma\n", repr(text)
        with cur.copy(f"COPY (SELECT id FROM {TABLE} WHERE id < 100 ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["int4"])
            assert [row[0] for row in copy.rows()] == [1, 2, 3, 4, 5, 6, 7]
        try:
            with cur.copy(f"COPY {TABLE} (id, name) FROM STDIN") as copy:
                copy.write_row((1, "duplicate"))
            raise AssertionError("COPY of a duplicate key accepted")
        except errors.UniqueViolation:
            pass
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (109,)


def prepared_statements():
    with connect(autocommit=True) as conn:
        query = f"SELECT name FROM {TABLE} WHERE id = %s"
        for id, name in [(1, "one"), (2, "two"), (100, "copied 100")]:
            assert conn.execute(query, (id,), prepare=True).fetchone() == (name,)
        prepared = conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s",
            (f"SELECT name FROM {TABLE}%",),
        ).fetchone()
        assert prepared == (1,), prepared
        # psycopg prepares a statement run often enough on its own, too.
        conn.prepare_threshold = 0
        for id in range(1, 4):
            conn.execute(f"UPDATE {TABLE} SET name = name WHERE id = %s", (id,))
        # And a prepared statement survives a transaction around it.
        with conn.transaction():
            assert conn.execute(query, (2,), prepare=True).fetchone() == ("two",)


class IgnoredPipelineAbort(logging.Filter):
    """Keeps psycopg's "error ignored terminating <Pipeline>" warning out of the output."""

    def __init__(self, ignored):
        super().__init__()
        self.ignored = ignored

    def filter(self, record):
        message = record.getMessage()
        if message.startswith("error ignored terminating <psycopg.Pipeline"):
            self.ignored.append(message)
            return False
        return True


def pipeline_mode():
    with connect(autocommit=True) as conn:
        with conn.pipeline():
            cursors = [conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (id,)) for id in (1, 2, 3)]
            conn.execute(f"UPDATE {TABLE} SET name = %s WHERE id = %s", ("ONE", 1))
        assert [cur.fetchone() for cur in cursors] == [("one",), ("two",), ("three",)]
        assert conn.execute(f"SELECT name FROM {TABLE} WHERE id = 1").fetchone() == ("ONE",)
        # When the error arrives while the block still runs (it depends on timing, with
        # or without the proxy), psycopg raises it there and logs the pipeline's own
        # PipelineAborted on leaving the block as an ignored second error: that log line
        # is psycopg's, not a failure.
        ignored = []
        silence = IgnoredPipelineAbort(ignored)
        logging.getLogger("psycopg").addFilter(silence)
        try:
            with conn.pipeline():
                conn.execute("SELECT 1 / %s", (0,))
                conn.execute(f"UPDATE {TABLE} SET name = 'not run' WHERE id = 1")
            raise AssertionError("division by zero accepted")
        except errors.DivisionByZero:
            pass
        finally:
            logging.getLogger("psycopg").removeFilter(silence)
        assert all("pipeline aborted" in message for message in ignored), ignored
        assert conn.execute(f"SELECT name FROM {TABLE} WHERE id = 1").fetchone() == ("ONE",)


def cancel_sleep(cancel_name, autocommit):
    with connect(autocommit=autocommit) as conn:
        cancel = getattr(conn, cancel_name)
        timer = threading.Timer(0.5, cancel)
        started = time.monotonic()
        timer.start()
        try:
            conn.execute("SELECT pg_sleep(10)")
            raise AssertionError("pg_sleep(10) was not cancelled")
        except errors.QueryCanceled:
            pass
        finally:
            timer.join()
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"the cancelled pg_sleep(10) took {elapsed:.1f}s"
        if not autocommit:
            conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE id = 1").fetchone() == (1,)


def cancel():
    cancel_sleep("cancel", autocommit=True)
    cancel_sleep("cancel", autocommit=False)
    # libpq 17's cancel, which negotiates SSL first (the proxy answers N).
    cancel_sleep("cancel_safe", autocommit=True)


def refusal():
    with connect() as conn:
        try:
            conn.execute(f"CREATE INDEX {TABLE}_name_idx ON {TABLE} (name)")
            raise AssertionError("plain CREATE INDEX accepted for a guarded role")
        except psycopg.Error as refused:
            diag = refused.diag
            assert refused.sqlstate == "SM001", refused.sqlstate
            assert diag.severity == "ERROR", diag.severity
            assert diag.message_primary == (
                f"create_index_non_concurrently: CREATE INDEX {TABLE}_name_idx on {TABLE} "
                "without CONCURRENTLY blocks writes while the index builds"
            ), diag.message_primary
            assert diag.message_detail.startswith(f"Lock: SHARE on {TABLE}, blocks writes."), diag.message_detail
            assert f"CREATE INDEX CONCURRENTLY {TABLE}_name_idx ON {TABLE} (name);" in diag.message_hint, (
                diag.message_hint
            )
        # psycopg opened a transaction for it: now aborted, and ROLLBACK works.
        try:
            conn.execute("SELECT 1")
            raise AssertionError("statement ran in an aborted transaction")
        except errors.InFailedSqlTransaction:
            conn.rollback()
    with connect(autocommit=True) as conn:
        try:
            conn.execute(f"CREATE INDEX {TABLE}_name_idx ON {TABLE} (name)", prepare=True)
            raise AssertionError("prepared plain CREATE INDEX accepted for a guarded role")
        except psycopg.Error as refused:
            assert refused.sqlstate == "SM001", refused.sqlstate
        with conn.transaction():
            try:
                conn.execute(f"CREATE INDEX CONCURRENTLY {TABLE}_name_idx ON {TABLE} (name)")
                raise AssertionError("CREATE INDEX CONCURRENTLY accepted in a transaction")
            except psycopg.Error as refused:
                assert refused.sqlstate == "25001", refused.sqlstate
                assert refused.diag.message_primary.startswith("concurrently_in_transaction: ")
        conn.execute(f"CREATE INDEX CONCURRENTLY {TABLE}_name_idx ON {TABLE} (name)")
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY indexname", (TABLE,)
        ).fetchall()
        assert indexes == [(f"{TABLE}_name_idx",), (f"{TABLE}_pkey",)], indexes


def unguarded_ddl():
    with connect() as conn:
        conn.execute(f"CREATE INDEX {TABLE}_name_idx ON {TABLE} (name)")
        conn.commit()


CHECKS = [
    ("ordinary queries", ordinary_queries),
    ("transactions", transactions),
    ("COPY in and out", copy_in_and_out),
    ("prepared statements", prepared_statements),
    ("pipeline mode", pipeline_mode),
    ("cancel", cancel),
]
if ROLE_KIND == "guarded":
    CHECKS.append(("unsafe DDL refused with the rule's fields", refusal))
else:
    CHECKS.append(("DDL of an unguarded role not inspected", unguarded_ddl))

for name, run in CHECKS:
    run()
    print(f"{ROLE_KIND}: {name}: ok", flush=True)
print(f"{ROLE_KIND}: all checks passed", flush=True)
