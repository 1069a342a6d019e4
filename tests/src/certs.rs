//! Certificates for TLS tests: a CA and server certificates made with openssl.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A temporary dir for certificates, readable by the `postgres` user; removed on drop.
pub struct CertDir(PathBuf);

impl CertDir {
    pub fn new(name: &str) -> CertDir {
        let dir = std::env::temp_dir().join(format!("sm-certs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        CertDir(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    pub fn path_str(&self, file: &str) -> String {
        self.path(file).to_str().unwrap().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `<name>.pem` and `<name>.key`: a self-signed CA.
    pub fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=safe_migrations test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// `server.pem` and `server.key`, CN=localhost with `subject_alt_names`, signed by
    /// the CA `ca`; the key belongs to `postgres` with mode 600, as the server requires.
    pub fn server_certificate(&self, ca: &str, subject_alt_names: &str) {
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            self.path("server.ext"),
            format!(
                "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = {subject_alt_names}\n"
            ),
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        let key = self.path("server.key");
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&key)
            .status()
            .unwrap();
        assert!(chown.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// postgresql.conf lines for TLS with `server.pem` and `server.key`.
    pub fn ssl_conf(&self) -> Vec<(String, String)> {
        vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), self.path_str("server.pem")),
            ("ssl_key_file".into(), self.path_str("server.key")),
        ]
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
