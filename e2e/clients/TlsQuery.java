// Runs one query twice over a JDBC URL and prints the first column of every row, one per line:
// e2e/pg-tls.test.ts and e2e/mysql-tls.test.ts drive pgJDBC and MariaDB Connector/J through
// sidecache over TLS with it (java's single-file source launcher: no compile step).
//
//   java -cp DRIVER.jar TlsQuery.java JDBC-URL SQL
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;

public final class TlsQuery {
  public static void main(String[] args) throws Exception {
    try (Connection conn = DriverManager.getConnection(args[0]); Statement st = conn.createStatement()) {
      for (int run = 0; run < 2; run++) {
        try (ResultSet rs = st.executeQuery(args[1])) {
          while (rs.next()) System.out.println(rs.getString(1));
        }
      }
    }
  }
}
