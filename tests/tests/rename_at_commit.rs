//! Rule rename_table is judged when the rename's transaction commits: a table renamed
//! with a view under the old name over all of the new one (expand/contract) commits; one
//! renamed without fails at its COMMIT, which ends the transaction rolled back (as a
//! commit that fails on the server does), and the old name still works. Through the
//! extension and through the proxy, by simple Query and by the extended protocol, in a
//! transaction block, in one multi-statement Query, and in a DO block that commits.

use e2e::{connect, Cluster, ClusterOptions, Proxy};
use postgres::Client;

fn cluster(extension: bool) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        extension,
        ..ClusterOptions::default()
    });
    cluster.create_role("migrator", &[("mode", "enforce")]);
    cluster.execute(
        &cluster.url("migrator", "postgres"),
        "CREATE TABLE posts (id int PRIMARY KEY, title text); INSERT INTO posts VALUES (1, 'first'); \
         CREATE SEQUENCE counter",
    );
    cluster
}

fn sqlstate(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|db| db.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {err}"))
}

/// The relations named posts or articles, with their kind.
fn relations(client: &mut Client) -> String {
    let row = client
        .query_one(
            "SELECT coalesce(string_agg(relname || ' ' || relkind::text, ', ' ORDER BY relname), '') FROM pg_class \
             WHERE relname IN ('posts', 'articles')",
            &[],
        )
        .unwrap();
    row.get(0)
}

fn scenario(url: &str, route: &str) {
    let mut client = connect(url);

    // Without a view, extended protocol in a block: the COMMIT fails and rolls back.
    let mut tx = client.transaction().unwrap();
    tx.execute("ALTER TABLE posts RENAME TO articles", &[]).unwrap();
    tx.execute("CREATE VIEW posts AS SELECT id FROM articles", &[]).unwrap();
    let err = tx.commit().unwrap_err();
    assert_eq!(sqlstate(&err), "SM002", "{route}: {err:?}");
    let db = err.as_db_error().unwrap();
    assert!(
        db.message()
            .starts_with("rename_table: ALTER TABLE posts RENAME TO articles breaks application code"),
        "{route}: {}",
        db.message()
    );
    assert!(
        db.hint()
            .unwrap_or_default()
            .contains("CREATE VIEW posts AS SELECT * FROM articles;"),
        "{route}: {db:?}"
    );
    // The session is outside any transaction again: the next statement runs.
    assert_eq!(relations(&mut client), "posts r", "{route}");

    // ALTER TABLE renames a sequence too, which is not a table rename: in a block by the
    // extended protocol, and on its own.
    let mut tx = client.transaction().unwrap();
    tx.execute("ALTER TABLE counter RENAME TO counter_two", &[]).unwrap();
    tx.commit().unwrap();
    client
        .execute("ALTER TABLE counter_two RENAME TO counter", &[])
        .unwrap();

    // A rename rolled back leaves nothing to judge: the next transaction commits.
    let mut tx = client.transaction().unwrap();
    tx.execute("ALTER TABLE posts RENAME TO articles", &[]).unwrap();
    tx.rollback().unwrap();
    let mut tx = client.transaction().unwrap();
    tx.execute("UPDATE posts SET title = title", &[]).unwrap();
    tx.commit().unwrap();
    assert_eq!(relations(&mut client), "posts r", "{route}");

    // Extended protocol in a block: a DO block that renames, and a stand-in view renamed
    // away again, are followed as they run.
    let mut tx = client.transaction().unwrap();
    tx.execute("DO $$BEGIN ALTER TABLE posts RENAME TO articles; END$$", &[])
        .unwrap();
    let err = tx.commit().unwrap_err();
    assert_eq!(sqlstate(&err), "SM002", "{route}: {err:?}");
    assert_eq!(relations(&mut client), "posts r", "{route}");
    let mut tx = client.transaction().unwrap();
    tx.execute("ALTER TABLE posts RENAME TO articles", &[]).unwrap();
    tx.execute("CREATE VIEW posts AS SELECT * FROM articles", &[]).unwrap();
    tx.execute("ALTER VIEW posts RENAME TO old_posts", &[]).unwrap();
    let err = tx.commit().unwrap_err();
    assert_eq!(sqlstate(&err), "SM002", "{route}: {err:?}");
    assert_eq!(relations(&mut client), "posts r", "{route}");

    // Simple protocol, a rename alone outside a block: refused as it commits.
    let err = client
        .batch_execute("ALTER TABLE posts RENAME TO articles")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "SM002", "{route}: {err:?}");
    assert_eq!(relations(&mut client), "posts r", "{route}");

    // The same in a block, simple protocol: refused at COMMIT, and the block is over.
    client
        .batch_execute("BEGIN; ALTER TABLE posts RENAME TO articles")
        .unwrap();
    let err = client.batch_execute("COMMIT").unwrap_err();
    assert_eq!(sqlstate(&err), "SM002", "{route}: {err:?}");
    assert_eq!(relations(&mut client), "posts r", "{route}");

    // A DO block that renames and commits: refused at its COMMIT.
    let err = client
        .batch_execute("DO $$BEGIN ALTER TABLE posts RENAME TO articles; COMMIT; END$$")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "SM002", "{route}: {err:?}");
    assert_eq!(relations(&mut client), "posts r", "{route}");

    // With the view, in one multi-statement Query: it commits.
    client
        .batch_execute("ALTER TABLE posts RENAME TO articles; CREATE VIEW posts AS SELECT * FROM articles")
        .unwrap();
    assert_eq!(relations(&mut client), "articles r, posts v", "{route}");
    // Running code that uses the old name reads and writes through the view.
    client.execute("INSERT INTO posts VALUES (2, 'second')", &[]).unwrap();
    let count: i64 = client.query_one("SELECT count(*) FROM articles", &[]).unwrap().get(0);
    assert_eq!(count, 2, "{route}");

    // And back, extended protocol in a block: the view goes, the rename comes with a view.
    let mut tx = client.transaction().unwrap();
    tx.execute("DROP VIEW posts", &[]).unwrap();
    tx.execute("ALTER TABLE articles RENAME TO posts", &[]).unwrap();
    tx.execute("CREATE VIEW articles AS SELECT * FROM posts", &[]).unwrap();
    tx.commit().unwrap();
    assert_eq!(relations(&mut client), "articles v, posts r", "{route}");
}

#[test]
fn a_rename_commits_only_with_a_view_for_the_old_name_through_the_extension() {
    let cluster = cluster(true);
    scenario(&cluster.url("migrator", "postgres"), "extension");
}

#[test]
fn a_rename_commits_only_with_a_view_for_the_old_name_through_the_proxy() {
    let cluster = cluster(false);
    let proxy = Proxy::start(&cluster, &[]);
    scenario(&proxy.url("migrator", "postgres"), "proxy");
}
