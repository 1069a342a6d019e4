// Applies Flyway-style SQL migrations (V<version>__<description>.sql) on PostgreSQL over
// pgjdbc's extended protocol: a session advisory lock, the flyway_schema_history table
// (created in one transaction, a statement at a time, as Flyway does), then per pending
// file either one transaction whose statements go out as one batch (Parse/Bind/Execute
// for each, then a single Sync) followed by the history row, or, for a file Flyway would
// run outside a transaction (CREATE INDEX CONCURRENTLY), each statement on its own.
//
// Usage: java FlywayReplay <jdbc url> <user> <password> <file>...
// Exit 0 when every file is applied, 1 with the server's error when one fails.

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class FlywayReplay {
    private static final long LOCK_ID = 77431708279161L;
    private static final Pattern FILE_NAME = Pattern.compile("V(\\d+)__(.+)\\.sql");
    private static final String[] CREATE_HISTORY = {
        "CREATE TABLE \"public\".\"flyway_schema_history\" (\n"
            + "    \"installed_rank\" INT NOT NULL,\n"
            + "    \"version\" VARCHAR(50),\n"
            + "    \"description\" VARCHAR(200) NOT NULL,\n"
            + "    \"type\" VARCHAR(20) NOT NULL,\n"
            + "    \"script\" VARCHAR(1000) NOT NULL,\n"
            + "    \"checksum\" INTEGER,\n"
            + "    \"installed_by\" VARCHAR(100) NOT NULL,\n"
            + "    \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),\n"
            + "    \"execution_time\" INTEGER NOT NULL,\n"
            + "    \"success\" BOOLEAN NOT NULL\n"
            + ")",
        "ALTER TABLE \"public\".\"flyway_schema_history\" ADD CONSTRAINT \"flyway_schema_history_pk\" "
            + "PRIMARY KEY (\"installed_rank\")",
        "CREATE INDEX \"flyway_schema_history_s_idx\" ON \"public\".\"flyway_schema_history\" (\"success\")",
    };

    public static void main(String[] args) throws Exception {
        try (Connection conn = DriverManager.getConnection(args[0], args[1], args[2])) {
            try (PreparedStatement lock = conn.prepareStatement("SELECT pg_advisory_lock(?)")) {
                lock.setLong(1, LOCK_ID);
                lock.executeQuery().close();
            }
            try {
                createHistoryTable(conn);
                for (int i = 3; i < args.length; i++) {
                    migrate(conn, Path.of(args[i]));
                }
            } catch (SQLException e) {
                System.err.println("ERROR: " + describe(e));
                System.exit(1);
            }
            try (PreparedStatement unlock = conn.prepareStatement("SELECT pg_advisory_unlock(?)")) {
                unlock.setLong(1, LOCK_ID);
                unlock.executeQuery().close();
            }
        }
    }

    private static void createHistoryTable(Connection conn) throws SQLException {
        try (Statement query = conn.createStatement();
             ResultSet rows = query.executeQuery("SELECT to_regclass('public.flyway_schema_history') IS NOT NULL")) {
            rows.next();
            if (rows.getBoolean(1)) {
                return;
            }
        }
        conn.setAutoCommit(false);
        try (Statement each = conn.createStatement()) {
            for (String sql : CREATE_HISTORY) {
                each.execute(sql);
            }
            conn.commit();
        } catch (SQLException e) {
            conn.rollback();
            throw e;
        } finally {
            conn.setAutoCommit(true);
        }
    }

    private static void migrate(Connection conn, Path file) throws Exception {
        Matcher name = FILE_NAME.matcher(file.getFileName().toString());
        if (!name.matches()) {
            throw new IllegalArgumentException("not a Flyway migration file name: " + file);
        }
        String version = name.group(1);
        String description = name.group(2).replace('_', ' ');
        if (applied(conn, version)) {
            return;
        }
        String script = Files.readString(file);
        List<String> statements = split(script);
        boolean transactional = !script.toUpperCase(Locale.ROOT).contains("CONCURRENTLY");
        System.out.println("Migrating schema \"public\" to version \"" + version + " - " + description + "\""
            + (transactional ? "" : " [non-transactional]"));
        long started = System.currentTimeMillis();
        if (transactional) {
            conn.setAutoCommit(false);
            try (Statement batch = conn.createStatement()) {
                for (String sql : statements) {
                    batch.addBatch(sql);
                }
                batch.executeBatch();
                recordSuccess(conn, version, description, file, script, started);
                conn.commit();
            } catch (SQLException e) {
                conn.rollback();
                throw new SQLException("Migration " + file.getFileName() + " failed", e.getSQLState(), e);
            } finally {
                conn.setAutoCommit(true);
            }
        } else {
            try (Statement each = conn.createStatement()) {
                for (String sql : statements) {
                    each.execute(sql);
                }
            } catch (SQLException e) {
                throw new SQLException("Migration " + file.getFileName() + " failed", e.getSQLState(), e);
            }
            recordSuccess(conn, version, description, file, script, started);
        }
        System.out.println("Successfully applied migration to schema \"public\", now at version v" + version);
    }

    private static boolean applied(Connection conn, String version) throws SQLException {
        try (PreparedStatement query = conn.prepareStatement(
                "SELECT count(*) FROM \"public\".\"flyway_schema_history\" WHERE \"version\" = ? AND \"success\"")) {
            query.setString(1, version);
            try (ResultSet rows = query.executeQuery()) {
                rows.next();
                return rows.getLong(1) > 0;
            }
        }
    }

    private static void recordSuccess(Connection conn, String version, String description, Path file,
                                      String script, long started) throws SQLException {
        try (PreparedStatement insert = conn.prepareStatement(
                "INSERT INTO \"public\".\"flyway_schema_history\" (\"installed_rank\", \"version\", \"description\", "
                    + "\"type\", \"script\", \"checksum\", \"installed_by\", \"execution_time\", \"success\") "
                    + "SELECT COALESCE(MAX(\"installed_rank\"), 0) + 1, ?, ?, 'SQL', ?, ?, current_user, ?, true "
                    + "FROM \"public\".\"flyway_schema_history\"")) {
            insert.setString(1, version);
            insert.setString(2, description);
            insert.setString(3, file.getFileName().toString());
            insert.setInt(4, script.hashCode());
            insert.setInt(5, (int) (System.currentTimeMillis() - started));
            insert.executeUpdate();
        }
    }

    /** Statements end with a semicolon at the end of a line; comment lines stay with theirs. */
    private static List<String> split(String script) {
        List<String> statements = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : script.split("\n", -1)) {
            current.append(line).append('\n');
            String trimmed = line.strip();
            if (trimmed.endsWith(";") && !trimmed.startsWith("--")) {
                String statement = current.toString().strip();
                statements.add(statement.substring(0, statement.length() - 1));
                current.setLength(0);
            }
        }
        if (!current.toString().isBlank() && !current.toString().strip().startsWith("--")) {
            statements.add(current.toString().strip());
        }
        return statements;
    }

    /** The message chain down to the server's own error (with its Detail and Hint lines). */
    private static String describe(SQLException e) {
        StringBuilder out = new StringBuilder();
        for (Throwable t = e; t != null; ) {
            if (out.length() > 0) {
                out.append("\nCaused by: ");
            }
            out.append(t.getMessage());
            if (t instanceof SQLException && ((SQLException) t).getSQLState() != null) {
                out.append(" [SQL State: ").append(((SQLException) t).getSQLState()).append(']');
            }
            Throwable next = t instanceof BatchUpdateException ? ((BatchUpdateException) t).getNextException() : null;
            t = next != null ? next : t.getCause();
        }
        return out.toString();
    }
}
