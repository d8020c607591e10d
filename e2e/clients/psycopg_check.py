"""A psycopg application in miniature, run by e2e/pg-psycopg.test.ts once directly against
PostgreSQL and once through sidecache: every result goes to stdout as text, so the two runs must
print exactly the same lines.

    /usr/bin/python3 psycopg_check.py psycopg2|psycopg3|psycopg3-prepared-binary DSN TABLE

psycopg2 interpolates parameters on the client and sends simple Query messages; psycopg 3 binds
them server-side (extended protocol) and prepares a statement after it ran five times;
`psycopg3-prepared-binary` prepares every statement at once (prepare=True) and reads binary results
(binary=True). At a line "## checkpoint NAME" the program waits for a line on stdin, so the test
can read the proxy's cache counters between the steps. TABLE and TABLE_copy are dropped and created
here; the session runs with TimeZone UTC.
"""
import datetime
import io
import sys
from decimal import Decimal

REPEATS = 8  # executions of the same parameterized SELECT with the same parameter


def out(line):
    print(line, flush=True)


def checkpoint(name):
    out("## checkpoint " + name)
    if sys.stdin.readline() == "":
        raise RuntimeError("stdin closed at checkpoint " + name)


def show(value):
    """A value as the driver returned it: its type and a repr that does not depend on the run."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, (bytes, bytearray)):
        return "bytes:" + bytes(value).hex()
    return type(value).__name__ + ":" + repr(value)


class Psycopg2:
    def __init__(self, dsn):
        import psycopg2
        import psycopg2.extras
        self.module = psycopg2
        self.json = psycopg2.extras.Json
        self.conn = psycopg2.connect(dsn)
        self.prepare = None
        self.binary = False

    def cursor(self):
        return self.conn.cursor()

    def execute(self, cur, sql, params=None):
        cur.execute(sql, params)

    def error(self, e):
        return "%s %s" % (e.pgcode, e.pgerror.splitlines()[0])

    def notices(self):
        found = [n.strip() for n in self.conn.notices]
        del self.conn.notices[:]
        return found

    def copy_in(self, cur, sql, text):
        cur.copy_expert(sql, io.StringIO(text))

    def copy_out(self, cur, sql):
        buf = io.StringIO()
        cur.copy_expert(sql, buf)
        return buf.getvalue()

    def named_cursor(self, name, withhold):
        return self.conn.cursor(name, withhold=withhold)

    def notifies(self):
        self.conn.poll()
        found = [(n.channel, n.payload) for n in self.conn.notifies]
        del self.conn.notifies[:]
        return found


class Psycopg3:
    def __init__(self, dsn, prepare=None, binary=False):
        import psycopg
        import psycopg.types.json
        self.module = psycopg
        self.json = psycopg.types.json.Jsonb
        self.conn = psycopg.connect(dsn)
        self.prepare = prepare
        self.binary = binary
        self._notices = []
        self._notifies = []
        self.conn.add_notice_handler(lambda d: self._notices.append("%s:  %s" % (d.severity, d.message_primary)))
        self.conn.add_notify_handler(lambda n: self._notifies.append((n.channel, n.payload)))

    def cursor(self):
        return self.conn.cursor(binary=self.binary)

    def execute(self, cur, sql, params=None):
        cur.execute(sql, params, prepare=self.prepare)

    def error(self, e):
        return "%s %s" % (e.sqlstate, str(e).splitlines()[0])

    def notices(self):
        found = list(self._notices)
        self._notices.clear()
        return found

    def copy_in(self, cur, sql, text):
        with cur.copy(sql) as copy:
            copy.write(text)

    def copy_out(self, cur, sql):
        chunks = []
        with cur.copy(sql) as copy:
            for data in copy:
                chunks.append(bytes(data))
        return b"".join(chunks).decode()

    def named_cursor(self, name, withhold):
        return self.conn.cursor(name, withhold=withhold, binary=self.binary)

    def notifies(self):
        found = list(self._notifies)
        self._notifies.clear()
        return found


class Check:
    def __init__(self, db, table):
        self.db = db
        self.conn = db.conn
        self.table = table

    def rows(self, label, cur):
        out("%s columns %s" % (label, " ".join(d.name for d in cur.description)))
        for row in cur.fetchall():
            out("%s row %s" % (label, " ".join(show(v) for v in row)))

    def run(self):
        db, t = self.db, self.table
        out("autocommit %s" % self.conn.autocommit)
        self.conn.autocommit = True
        cur = db.cursor()
        self.set_up(cur)
        out("setup notices %s" % db.notices())
        checkpoint("setup")

        select = "SELECT id, big, num, txt, tstz, bin, flag, tags, nums, doc, day, note FROM " + t + " WHERE id <= %s ORDER BY id"
        for i in range(1, REPEATS + 1):
            db.execute(cur, select, (3,))
            self.rows("repeat %d" % i, cur)
            # psycopg 3 prepares the statement after its fifth execution.
            if i == REPEATS - 2:
                checkpoint("warm")
        checkpoint("repeated")

        db.execute(cur, "UPDATE " + t + " SET txt = %s, num = num + 1 WHERE id = %s", ("updated by psycopg", 2))
        out("update rowcount %d" % cur.rowcount)
        db.execute(cur, select, (3,))
        self.rows("after update", cur)
        # executemany after the SELECT was cached again (psycopg 3 sends it as one pipeline).
        db.execute(cur, select, (3,))
        self.rows("before executemany", cur)
        cur.executemany("UPDATE " + t + " SET flag = %s, note = %s WHERE id = %s",
                        [(False, "executemany 1", 1), (True, "executemany 3", 3)])
        out("executemany rowcount %d" % cur.rowcount)
        db.execute(cur, select, (3,))
        self.rows("after executemany", cur)
        checkpoint("read-after-write")

        self.transactions(select)
        checkpoint("transactions")

        if isinstance(db, Psycopg3):
            self.pipeline()
            checkpoint("pipeline")

        self.read_only()
        self.copy()
        self.server_cursors()
        self.notices()
        self.errors()
        self.notify()
        out("done")

    def set_up(self, cur):
        db, t = self.db, self.table
        db.execute(cur, "SET TimeZone TO 'UTC'")
        db.execute(cur, "DROP TABLE IF EXISTS %s, %s_copy" % (t, t))
        db.execute(cur, "CREATE TABLE " + t + " (id int PRIMARY KEY, big bigint, num numeric(20,6), txt text, "
                   "tstz timestamptz, bin bytea, flag boolean, tags text[], nums int[], doc jsonb, day date, note text)")
        db.execute(cur, "CREATE TABLE " + t + "_copy (id int PRIMARY KEY, txt text)")
        utc = datetime.timezone.utc
        rows = [
            (1, 9000000000000000001, Decimal("12345678901234.123456"), "first ünïcødé ✓",
             datetime.datetime(2024, 2, 29, 13, 45, 56, 789000, tzinfo=utc), b"\x00\x01\x02\xfe\xff", True,
             ["a", "b c", '"q"', None], [1, None, -3], db.json({"a": [1, "b", None], "n": 1.5}), datetime.date(2024, 2, 29), None),
            (2, -1, Decimal("-0.000001"), "second 'quoted' \\ backslash",
             datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))), b"", False,
             [], [], db.json([]), datetime.date(1999, 12, 31), "a note"),
        ] + [
            (i, i * 1000, Decimal(i) + Decimal("0.5"), "many row %d" % i, datetime.datetime(2024, 1, i, 12, 30, tzinfo=utc),
             bytes([i]), i % 2 == 0, ["t%d" % i], [i], db.json({"i": i}), datetime.date(2024, 1, i), None)
            for i in range(3, 7)
        ]
        cur.executemany("INSERT INTO " + t + " (id, big, num, txt, tstz, bin, flag, tags, nums, doc, day, note) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        db.execute(cur, "SELECT count(*) FROM " + t)
        out("inserted %s" % (cur.fetchone(),))

    def count(self, cur):
        self.db.execute(cur, "SELECT count(*), max(id) FROM " + self.table)
        return "%d rows, max id %s" % cur.fetchone()

    def transactions(self, select):
        db, t, conn = self.db, self.table, self.conn
        conn.autocommit = False
        cur = db.cursor()
        db.execute(cur, "INSERT INTO " + t + " (id, txt) VALUES (%s, %s)", (100, "committed"))
        db.execute(cur, "UPDATE " + t + " SET txt = %s WHERE id = %s", ("changed in a committed transaction", 3))
        db.execute(cur, select, (3,))
        self.rows("in transaction", cur)
        conn.commit()
        out("after commit " + self.count(cur))
        conn.commit()

        db.execute(cur, "INSERT INTO " + t + " (id, txt) VALUES (%s, %s)", (101, "rolled back"))
        db.execute(cur, "UPDATE " + t + " SET txt = %s WHERE id = %s", ("changed in a rolled back transaction", 1))
        out("in transaction " + self.count(cur))
        conn.rollback()
        conn.autocommit = True
        out("after rollback " + self.count(cur))
        db.execute(cur, select, (3,))
        self.rows("after transactions", cur)

    def pipeline(self):
        """psycopg 3's pipeline mode: statements sent back to back, one Sync for several of them
        (in autocommit mode they form one implicit transaction), results read afterwards."""
        db, t = self.db, self.table
        read = "SELECT id, txt FROM " + t + " WHERE id = %s"
        cur = db.cursor()
        for i in range(2):
            db.execute(cur, read, (4,))
            out("before pipeline %d %s" % (i, cur.fetchall()))
        first, update, second = db.cursor(), db.cursor(), db.cursor()
        with self.conn.pipeline() as p:
            db.execute(first, read, (4,))
            db.execute(update, "UPDATE " + t + " SET txt = %s WHERE id = %s", ("changed in a pipeline", 4))
            db.execute(second, read, (4,))
            p.sync()
            out("pipeline read %s" % first.fetchall())
            out("pipeline update rowcount %d" % update.rowcount)
            out("pipeline read after the update %s" % second.fetchall())
            db.execute(first, read, (5,))
            p.sync()
            db.execute(second, read, (5,))
        out("pipeline reads of a row it did not change %s %s" % (first.fetchall(), second.fetchall()))
        db.execute(cur, read, (4,))
        out("after pipeline %s" % cur.fetchall())

    def read_only(self):
        """A read-only transaction (psycopg2: set_session(readonly=True); psycopg 3: read_only),
        as frameworks open for their queries: reads work, a write fails with 25006."""
        db, t, conn = self.db, self.table, self.conn
        conn.autocommit = False
        if isinstance(db, Psycopg2):
            conn.set_session(readonly=True)
        else:
            conn.read_only = True
        cur = db.cursor()
        out("read-only read " + self.count(cur))
        try:
            db.execute(cur, "DELETE FROM " + t)
            out("no error?")
        except db.module.Error as e:
            out("read-only write " + db.error(e))
        conn.rollback()
        if isinstance(db, Psycopg2):
            conn.set_session(readonly=False)
        else:
            conn.read_only = False
        conn.autocommit = True
        out("after read-only " + self.count(cur))

    def copy(self):
        db, t = self.db, self.table
        cur = db.cursor()
        db.execute(cur, "SELECT count(*) FROM " + t + "_copy")
        out("copy table rows before %s" % (cur.fetchone(),))
        db.execute(cur, "SELECT count(*) FROM " + t + "_copy")
        out("copy table rows again %s" % (cur.fetchone(),))
        db.copy_in(cur, "COPY " + t + "_copy (id, txt) FROM STDIN", "1\tone\n2\t\\N\n3\ttab\\there ✓\n")
        out("copy in rowcount %d" % cur.rowcount)
        db.execute(cur, "SELECT count(*) FROM " + t + "_copy")
        out("copy table rows after %s" % (cur.fetchone(),))
        out("copy out text %r" % db.copy_out(cur, "COPY " + t + "_copy TO STDOUT"))
        out("copy out csv %r" % db.copy_out(cur, "COPY (SELECT id, txt FROM " + t + " ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"))

    def server_cursors(self):
        db, t, conn = self.db, self.table, self.conn
        # WITHOUT HOLD: DECLARE and FETCH inside a transaction.
        conn.autocommit = False
        named = db.named_cursor("sc_fetch", withhold=False)
        named.itersize = 2
        named.execute("SELECT id, txt FROM " + t + " ORDER BY id")
        batches = []
        while True:
            batch = named.fetchmany(3)
            if not batch:
                break
            batches.append([row[0] for row in batch])
        named.close()
        conn.commit()
        out("named cursor batches %s" % batches)
        # WITH HOLD in autocommit mode: every FETCH is a statement of its own outside a
        # transaction, and each must return the next rows, not a remembered answer.
        conn.autocommit = True
        held = db.named_cursor("sc_held", withhold=True)
        held.execute("SELECT id FROM " + t + " ORDER BY id")
        batches = []
        while True:
            batch = held.fetchmany(2)
            if not batch:
                break
            batches.append([row[0] for row in batch])
        held.close()
        out("with hold cursor batches %s" % batches)

    def notices(self):
        db, t = self.db, self.table
        cur = db.cursor()
        db.execute(cur, "DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$")
        out("notices after DO %s" % db.notices())
        db.execute(cur, "CREATE FUNCTION " + t + "_shout(n int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE NOTICE 'shout %', n; RETURN n * 2; END $$")
        for i in range(2):
            db.execute(cur, "SELECT " + t + "_shout(%s) AS doubled", (21,))
            out("shout %d %s notices %s" % (i, cur.fetchone(), db.notices()))
        db.execute(cur, "DROP FUNCTION " + t + "_shout(int)")

    def errors(self):
        db, t, conn = self.db, self.table, self.conn
        cur = db.cursor()
        try:
            db.execute(cur, "SELECT * FROM " + t + "_missing")
            out("no error?")
        except db.module.Error as e:
            out("error " + db.error(e))
        conn.autocommit = False
        try:
            db.execute(cur, "INSERT INTO " + t + " (id) VALUES (%s)", (1,))
            out("no error?")
        except db.module.Error as e:
            out("error in transaction " + db.error(e))
            try:
                db.execute(cur, "SELECT 1")
                out("no error?")
            except db.module.Error as e2:
                out("then " + db.error(e2))
            conn.rollback()
        conn.autocommit = True
        out("after errors " + self.count(cur))

    def notify(self):
        db = self.db
        cur = db.cursor()
        channel = self.table + "_ch"
        db.execute(cur, "LISTEN " + channel)
        db.execute(cur, "SELECT pg_notify(%s, %s)", (channel, "payload ✓"))
        out("notifications %s" % db.notifies())
        db.execute(cur, "UNLISTEN " + channel)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("psycopg2", "psycopg3", "psycopg3-prepared-binary"):
        sys.stderr.write("usage: psycopg_check.py psycopg2|psycopg3|psycopg3-prepared-binary DSN TABLE\n")
        sys.exit(2)
    mode, dsn, table = sys.argv[1:]
    if mode == "psycopg2":
        db = Psycopg2(dsn)
    elif mode == "psycopg3":
        db = Psycopg3(dsn)
    else:
        db = Psycopg3(dsn, prepare=True, binary=True)
    out("driver %s %s" % (db.module.__name__, db.module.__version__.split()[0]))
    try:
        Check(db, table).run()
        cur = db.cursor()
        db.execute(cur, "DROP TABLE %s, %s_copy" % (table, table))
    finally:
        db.conn.close()


if __name__ == "__main__":
    main()
