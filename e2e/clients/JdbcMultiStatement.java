// Several statements in one JDBC execute, run by e2e/pg-pipelined-hits.test.ts: pgJDBC sends them
// as one Sync group (Parse, Bind, Describe, Execute for each, one Sync).
//
//   java -cp DIR:postgresql.jar JdbcMultiStatement JDBC-URL alone|together SQL...
//
// "alone": each SQL in an execute of its own; "together": all joined by ';' in one execute. Every
// result goes to stdout, one line per result: its rows as [v, ...], or the update count.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

public final class JdbcMultiStatement {
  public static void main(String[] args) throws SQLException {
    List<String> sql = Arrays.asList(args).subList(2, args.length);
    try (Connection conn = DriverManager.getConnection(args[0]); Statement st = conn.createStatement()) {
      if (args[1].equals("alone")) {
        for (String s : sql) print(st, st.execute(s));
      } else {
        print(st, st.execute(String.join(";", sql)));
      }
    }
  }

  /** Prints the statement's results from the current one on. */
  private static void print(Statement st, boolean isResultSet) throws SQLException {
    while (true) {
      if (isResultSet) {
        List<String> rows = new ArrayList<>();
        try (ResultSet rs = st.getResultSet()) {
          while (rs.next()) rows.add(rs.getString(1));
        }
        System.out.println(rows);
      } else {
        int count = st.getUpdateCount();
        if (count == -1) return;
        System.out.println("updated " + count);
      }
      isResultSet = st.getMoreResults();
    }
  }
}
