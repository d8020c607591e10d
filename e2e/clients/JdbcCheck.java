// A JDBC application in miniature, run by e2e/pg-jdbc.test.ts and e2e/mysql-jdbc.test.ts once
// directly against the server and once through sidecache: every result goes to stdout as text, so
// the two runs must print exactly the same lines.
//
//   java -Duser.timezone=UTC -cp DIR:DRIVER.jar JdbcCheck pg|mysql JDBC-URL TABLE
//
// At a line "## checkpoint NAME" the program waits for a line on stdin, so the test can read the
// proxy's cache counters between the steps. TABLE (and TABLE_auto) are dropped and created here.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;

public final class JdbcCheck {
  /** Times the same prepared SELECT runs: past pgJDBC's prepareThreshold (5), where it switches to
   * a named server statement and binary results. */
  private static final int REPEATS = 8;

  private static final BufferedReader STDIN = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

  private final boolean pg;
  private final String table;
  private final Connection conn;

  private JdbcCheck(boolean pg, String table, Connection conn) {
    this.pg = pg;
    this.table = table;
    this.conn = conn;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3 || !(args[0].equals("pg") || args[0].equals("mysql"))) {
      System.err.println("usage: JdbcCheck pg|mysql JDBC-URL TABLE");
      System.exit(2);
    }
    try (Connection conn = DriverManager.getConnection(args[1])) {
      new JdbcCheck(args[0].equals("pg"), args[2], conn).run();
    }
    System.out.println("done");
  }

  private static void print(String line) {
    System.out.println(line);
  }

  private static void checkpoint(String name) throws Exception {
    print("## checkpoint " + name);
    System.out.flush();
    if (STDIN.readLine() == null) throw new IllegalStateException("stdin closed at checkpoint " + name);
  }

  private void run() throws Exception {
    print("autocommit " + conn.getAutoCommit());
    setUp();
    checkpoint("setup");

    String select = "SELECT id, big, num, txt, ts, tstz, bin, flag, note FROM " + table + " WHERE id <= ? ORDER BY id";
    try (PreparedStatement ps = conn.prepareStatement(select)) {
      for (int i = 1; i <= REPEATS; i++) {
        ps.setInt(1, 3);
        printRows("repeat " + i, ps.executeQuery());
        // By now pgJDBC has its named statement (5th) and asks for binary results (6th); the last
        // executions send only Bind/Execute/Sync.
        if (i == REPEATS - 2) checkpoint("warm");
      }
      checkpoint("repeated");

      try (PreparedStatement update = conn.prepareStatement("UPDATE " + table + " SET txt = ?, num = num + 1 WHERE id = ?")) {
        update.setString(1, "updated by jdbc");
        update.setInt(2, 2);
        print("update count " + update.executeUpdate());
      }
      ps.setInt(1, 3);
      printRows("after update", ps.executeQuery());
      // A batch of writes after the SELECT was cached again (pgJDBC: one pipeline before a Sync;
      // MariaDB Connector/J with useBulkStmts: one COM_STMT_BULK_EXECUTE).
      ps.setInt(1, 3);
      printRows("before batch update", ps.executeQuery());
      try (PreparedStatement update = conn.prepareStatement("UPDATE " + table + " SET flag = ?, note = ? WHERE id = ?")) {
        for (int id = 1; id <= 3; id += 2) {
          update.setBoolean(1, id != 1);
          update.setString(2, "batch update " + id);
          update.setInt(3, id);
          update.addBatch();
        }
        StringBuilder counts = new StringBuilder("batch update counts");
        for (int n : update.executeBatch()) counts.append(' ').append(n);
        print(counts.toString());
      }
      ps.setInt(1, 3);
      printRows("after batch update", ps.executeQuery());
      checkpoint("read-after-write");

      transactions(ps);
      checkpoint("transactions");
    }
    readOnly();
    metaData();
    errors();
    fetchSize();
    maxRows();
    multiStatements();
    sessionSettings();
    queryTimeout();
    generatedKeys();
  }

  private void setUp() throws SQLException {
    try (Statement st = conn.createStatement()) {
      st.execute("DROP TABLE IF EXISTS " + table);
      st.execute("DROP TABLE IF EXISTS " + table + "_auto");
      st.execute(pg
          ? "CREATE TABLE " + table + " (id int PRIMARY KEY, big bigint, num numeric(20,6), txt text, "
            + "ts timestamp(3), tstz timestamptz(3), bin bytea, flag boolean, note text)"
          : "CREATE TABLE " + table + " (id int PRIMARY KEY, big bigint, num decimal(20,6), txt text, "
            + "ts datetime(3), tstz timestamp(3) NULL, bin blob, flag boolean, note text)");
      st.execute(pg
          ? "CREATE TABLE " + table + "_auto (id serial PRIMARY KEY, name text)"
          : "CREATE TABLE " + table + "_auto (id int AUTO_INCREMENT PRIMARY KEY, name text)");
    }
    String insert = "INSERT INTO " + table + " (id, big, num, txt, ts, tstz, bin, flag, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    try (PreparedStatement ps = conn.prepareStatement(insert)) {
      bindRow(ps, 1, 9_000_000_000_000_000_001L, "12345678901234.123456", "first ünïcødé ✓",
          "2024-02-29 13:45:56.789", "2024-02-29 13:45:56.789", new byte[] {0, 1, 2, (byte) 0xfe, (byte) 0xff}, true, null);
      print("insert count " + ps.executeUpdate());
      bindRow(ps, 2, -1L, "-0.000001", "second 'quoted' \\ backslash", "1999-12-31 23:59:59.999", "2000-01-01 00:00:00",
          new byte[0], false, "a note");
      ps.addBatch();
      for (int id = 3; id <= 6; id++) {
        bindRow(ps, id, (long) id * 1000, id + ".5", "batch row " + id, "2024-01-0" + id + " 00:00:00",
            "2024-01-0" + id + " 12:30:00", new byte[] {(byte) id}, id % 2 == 0, null);
        ps.addBatch();
      }
      StringBuilder counts = new StringBuilder("batch counts");
      for (int n : ps.executeBatch()) counts.append(' ').append(n);
      print(counts.toString());
    }
  }

  private static void bindRow(PreparedStatement ps, int id, long big, String num, String txt, String ts, String tstz,
      byte[] bin, boolean flag, String note) throws SQLException {
    ps.setInt(1, id);
    ps.setLong(2, big);
    ps.setBigDecimal(3, new BigDecimal(num));
    ps.setString(4, txt);
    ps.setTimestamp(5, Timestamp.valueOf(ts));
    ps.setTimestamp(6, Timestamp.valueOf(tstz));
    ps.setBytes(7, bin);
    ps.setBoolean(8, flag);
    if (note == null) ps.setNull(9, Types.VARCHAR);
    else ps.setString(9, note);
  }

  /** Each row as typed getters see it; the first call also prints the column metadata. */
  private static void printRows(String label, ResultSet rs) throws SQLException {
    try (rs) {
      ResultSetMetaData md = rs.getMetaData();
      StringBuilder cols = new StringBuilder(label + " columns");
      for (int c = 1; c <= md.getColumnCount(); c++) {
        cols.append(' ').append(md.getColumnLabel(c)).append(':').append(md.getColumnTypeName(c)).append('/').append(md.getColumnType(c));
      }
      print(cols.toString());
      while (rs.next()) {
        StringBuilder row = new StringBuilder(label + " row");
        row.append(" id=").append(rs.getInt("id"));
        row.append(" big=").append(rs.getLong("big"));
        BigDecimal num = rs.getBigDecimal("num");
        row.append(" num=").append(num == null ? "null" : num.toPlainString());
        row.append(" txt=").append(rs.getString("txt"));
        row.append(" ts=").append(rs.getTimestamp("ts"));
        row.append(" tstz=").append(rs.getTimestamp("tstz"));
        row.append(" bin=").append(hex(rs.getBytes("bin")));
        row.append(" flag=").append(rs.getBoolean("flag"));
        String note = rs.getString("note");
        row.append(" note=").append(rs.wasNull() ? "NULL" : note);
        print(row.toString());
      }
    }
  }

  private static String hex(byte[] bytes) {
    if (bytes == null) return "null";
    StringBuilder sb = new StringBuilder("x");
    for (byte b : bytes) sb.append(String.format("%02x", b));
    return sb.toString();
  }

  private String count() throws SQLException {
    try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*), max(id) FROM " + table)) {
      rs.next();
      return rs.getLong(1) + " rows, max id " + rs.getInt(2);
    }
  }

  /** Commit and rollback with setAutoCommit(false); `cached` is the prepared SELECT of the cache test. */
  private void transactions(PreparedStatement cached) throws SQLException {
    conn.setAutoCommit(false);
    try (PreparedStatement ins = conn.prepareStatement("INSERT INTO " + table + " (id, txt) VALUES (?, ?)");
         PreparedStatement upd = conn.prepareStatement("UPDATE " + table + " SET txt = ? WHERE id = ?")) {
      ins.setInt(1, 100);
      ins.setString(2, "committed");
      ins.executeUpdate();
      upd.setString(1, "changed in a committed transaction");
      upd.setInt(2, 3);
      upd.executeUpdate();
      cached.setInt(1, 3);
      printRows("in transaction", cached.executeQuery());
      conn.commit();
      print("after commit " + count());

      ins.setInt(1, 101);
      ins.setString(2, "rolled back");
      ins.executeUpdate();
      upd.setString(1, "changed in a rolled back transaction");
      upd.setInt(2, 1);
      upd.executeUpdate();
      print("in transaction " + count());
      conn.rollback();
    }
    conn.setAutoCommit(true);
    print("after rollback " + count());
    cached.setInt(1, 3);
    printRows("after transactions", cached.executeQuery());
  }

  private void readOnly() throws SQLException {
    conn.setReadOnly(true);
    print("read only " + conn.isReadOnly());
    conn.setAutoCommit(false);
    try (PreparedStatement ps = conn.prepareStatement("SELECT txt FROM " + table + " WHERE id = ?")) {
      ps.setInt(1, 1);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        print("read-only read " + rs.getString(1));
      }
    }
    conn.commit();
    conn.setAutoCommit(true);
    conn.setReadOnly(false);
    print("read only " + conn.isReadOnly());
  }

  private void metaData() throws SQLException {
    DatabaseMetaData md = conn.getMetaData();
    print("product " + md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
    print("driver " + md.getDriverName() + " " + md.getDriverMajorVersion() + "." + md.getDriverMinorVersion());
    print("quote " + md.getIdentifierQuoteString() + " transactions " + md.supportsTransactions());
    String catalog = pg ? null : conn.getCatalog();
    String schema = pg ? "public" : null;
    try (ResultSet rs = md.getTables(catalog, schema, table + "%", new String[] {"TABLE"})) {
      while (rs.next()) print("table " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
    }
    try (ResultSet rs = md.getColumns(catalog, schema, table, "%")) {
      while (rs.next()) {
        print("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE")
            + " nullable=" + rs.getInt("NULLABLE") + " position=" + rs.getInt("ORDINAL_POSITION"));
      }
    }
    try (ResultSet rs = md.getPrimaryKeys(catalog, schema, table)) {
      while (rs.next()) print("primary key " + rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ"));
    }
  }

  /** Server errors keep their SQLState and code, and the connection stays usable. */
  private void errors() throws SQLException {
    try (Statement st = conn.createStatement()) {
      st.executeQuery("SELECT * FROM " + table + "_missing");
      print("no error?");
    } catch (SQLException e) {
      print("error " + describe(e));
    }
    try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + table + " (id) VALUES (?)")) {
      ps.setInt(1, 7);
      ps.addBatch();
      ps.setInt(1, 1);
      ps.addBatch();
      ps.executeBatch();
      print("no error?");
    } catch (BatchUpdateException e) {
      print("batch error " + describe(e));
    }
    print("after errors " + count());
  }

  private static String describe(SQLException e) {
    // MariaDB Connector/J puts the connection id in its messages, which differs between two runs.
    String message = e.getMessage().replaceAll("\\(conn=\\d+\\) ", "").split("\n")[0];
    return e.getSQLState() + " " + e.getErrorCode() + " " + message;
  }

  /** A fetch size inside a transaction: pgJDBC reads through a portal a few rows at a time. */
  private void fetchSize() throws SQLException {
    conn.setAutoCommit(false);
    try (PreparedStatement ps = conn.prepareStatement("SELECT id, txt FROM " + table + " ORDER BY id")) {
      ps.setFetchSize(2);
      StringBuilder ids = new StringBuilder("fetched");
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) ids.append(' ').append(rs.getInt(1));
      }
      print(ids.toString());
    }
    conn.commit();
    conn.setAutoCommit(true);
  }

  /** setMaxRows on a statement whose full result was just cached: still only the first rows. */
  private void maxRows() throws SQLException {
    String sql = "SELECT id FROM " + table + " ORDER BY id";
    try (Statement st = conn.createStatement()) {
      for (int i = 0; i < 2; i++) print("all rows " + ids(st.executeQuery(sql)));
      st.setMaxRows(2);
      for (int i = 0; i < 2; i++) print("max rows 2 " + ids(st.executeQuery(sql)));
      st.setMaxRows(0);
      print("all rows again " + ids(st.executeQuery(sql)));
    }
  }

  private static String ids(ResultSet rs) throws SQLException {
    StringBuilder sb = new StringBuilder();
    try (rs) {
      while (rs.next()) sb.append(sb.length() == 0 ? "" : ",").append(rs.getInt(1));
    }
    return sb.toString();
  }

  /** Several statements in one execute(): pgJDBC sends them in one batch before a single Sync
   * (one implicit transaction), MariaDB in one COM_QUERY; the read after the UPDATE sees it. */
  private void multiStatements() throws SQLException {
    String read = "SELECT txt FROM " + table + " WHERE id = 4";
    try (Statement st = conn.createStatement()) {
      for (int i = 0; i < 2; i++) print("before multi " + texts(st.executeQuery(read)));
      boolean isResult = st.execute(read + "; UPDATE " + table + " SET txt = 'changed by a multi-statement' WHERE id = 4; " + read);
      for (int n = 1; ; n++) {
        if (isResult) {
          print("multi result " + n + " " + texts(st.getResultSet()));
        } else {
          int count = st.getUpdateCount();
          if (count == -1) break;
          print("multi result " + n + " update count " + count);
        }
        isResult = st.getMoreResults();
      }
      print("after multi " + texts(st.executeQuery(read)));
    }
  }

  private static String texts(ResultSet rs) throws SQLException {
    StringBuilder sb = new StringBuilder();
    try (rs) {
      while (rs.next()) sb.append('[').append(rs.getString(1)).append(']');
    }
    return sb.toString();
  }

  /** What connection pools and frameworks call on every borrow: isValid, isolation, schema. */
  private void sessionSettings() throws SQLException {
    for (int i = 0; i < 3; i++) print("valid " + conn.isValid(5));
    int isolation = conn.getTransactionIsolation();
    print("isolation " + isolation);
    conn.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
    print("isolation " + conn.getTransactionIsolation());
    print("read at serializable " + count());
    conn.setTransactionIsolation(isolation);
    print("isolation " + conn.getTransactionIsolation());
    if (pg) {
      print("schema " + conn.getSchema());
      conn.setSchema("public");
      print("schema " + conn.getSchema());
    } else {
      String catalog = conn.getCatalog();
      conn.setCatalog(catalog);
      print("catalog unchanged " + catalog.equals(conn.getCatalog()));
    }
    print("read after settings " + count());
  }

  /** setQueryTimeout: pgJDBC cancels with a CancelRequest on a new connection, MariaDB
   * Connector/J has the server stop the statement (max_statement_time); either way the
   * connection stays usable. */
  private void queryTimeout() throws SQLException {
    try (Statement st = conn.createStatement()) {
      st.setQueryTimeout(1);
      st.executeQuery(pg ? "SELECT pg_sleep(10)" : "SELECT SLEEP(10)");
      print("no timeout?");
    } catch (SQLException e) {
      print("timeout " + describe(e));
    }
    print("after timeout " + count());
  }

  private void generatedKeys() throws SQLException {
    try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + table + "_auto (name) VALUES (?)",
        Statement.RETURN_GENERATED_KEYS)) {
      for (String name : new String[] {"a", "b"}) {
        ps.setString(1, name);
        ps.executeUpdate();
        try (ResultSet keys = ps.getGeneratedKeys()) {
          keys.next();
          print("generated key " + keys.getLong(1));
        }
      }
    }
    try (Statement st = conn.createStatement()) {
      st.execute("DROP TABLE " + table + "_auto");
    }
  }
}
