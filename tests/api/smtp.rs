//! A real SMTP server for the mail tests: `aiosmtpd` (Debian's python3-aiosmtpd, or PyPI) running
//! `tests/smtp_sink.py` as a child process on a free loopback port, storing each message it accepts
//! as a JSON file the tests read back.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One message the server accepted.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Received {
    pub to: Vec<String>,
    pub from: String,
    pub header_from: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl Received {
    /// The link to `path` (`/invite`) in the text part, in full (`http://…/invite?token=…`).
    pub fn link(&self, path: &str) -> String {
        let at = self.text.find(&format!("{path}?token=")).unwrap_or_else(|| panic!("a {path} link in {}", self.text));
        let start = self.text[..at].rfind("http").expect("the link is absolute");
        self.text[start..].chars().take_while(|c| !c.is_whitespace()).collect()
    }

    /// The link's path and query, to follow it on the test's app.
    pub fn link_path(&self, path: &str) -> String {
        let url = url::Url::parse(&self.link(path)).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap_or(""))
    }
}

/// The SMTP server; stopped when dropped.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    refuse: bool,
    /// `starttls` or `smtps`, with the certificate and key files.
    tls: Option<(&'static str, PathBuf, PathBuf)>,
}

/// A Python that has aiosmtpd (pyenv's `python3` may not; Debian's package is for the system one).
fn python() -> &'static str {
    static PYTHON: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        for candidate in ["python3", "/usr/bin/python3"] {
            let ok = Command::new(candidate)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return candidate;
            }
        }
        panic!("the mail tests need aiosmtpd (apt-get install python3-aiosmtpd, or pip install aiosmtpd)");
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server that answers every recipient `451` (try again later).
    pub fn refusing() -> Self {
        Self::start_with(true)
    }

    /// A server that requires STARTTLS (`starttls`) or speaks TLS from the first byte (`smtps`), with
    /// this certificate and key.
    pub fn with_tls(mode: &'static str, cert: PathBuf, key: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = SmtpSink { port: free_port(), dir, child: None, refuse: false, tls: Some((mode, cert, key)) };
        sink.resume();
        sink
    }

    fn start_with(refuse: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = SmtpSink { port: free_port(), dir, child: None, refuse, tls: None };
        sink.resume();
        sink
    }

    /// `smtp://127.0.0.1:PORT` plus `query`.
    pub fn url(&self, query: &str) -> String {
        format!("smtp://127.0.0.1:{}{query}", self.port)
    }

    /// Starts the server again on the same port (after [`SmtpSink::stop`]).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).args(["--port", &self.port.to_string(), "--dir"]).arg(self.dir.path());
        if self.refuse {
            cmd.arg("--refuse");
        }
        if let Some((mode, cert, key)) = &self.tls {
            cmd.args(["--tls", mode, "--cert"]).arg(cert).arg("--key").arg(key);
        }
        // Its complaints (a client that gave up on TLS, say) go to a log beside the messages.
        let log = self.dir.path().join("server.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let why = || std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start: {}", why());
        self.child = Some(child);
    }

    /// Stops the server (its port then refuses connections): SIGTERM, and SIGKILL should it not be
    /// gone within 5 seconds, so a stuck server cannot hang a test.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_within(&mut child, Duration::from_secs(5));
        }
    }

    /// Every message received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| serde_json::from_str(&std::fs::read_to_string(self.dir.path().join(n)).unwrap()).unwrap())
            .collect()
    }

    /// Waits (polling, up to 20 s) until at least `n` messages arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{n} mails expected, {} arrived", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a child process: SIGTERM, then SIGKILL after `grace`; waits for it either way.
pub fn stop_within(child: &mut Child, grace: Duration) {
    // SAFETY: kill only sends a signal to the child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process stopped (with [`stop_within`]) when this is dropped, also when a test panics.
pub struct StopOnDrop(pub Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop_within(&mut self.0, Duration::from_secs(10));
    }
}
