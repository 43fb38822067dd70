//! `DATABASE_URL`: which database, and what its driver is given.

/// Which database a `DATABASE_URL` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed `DATABASE_URL`.
#[derive(Clone, Debug)]
pub struct DatabaseUrl {
    pub backend: Backend,
    /// What the driver is given: a file path for SQLite, the URL for PostgreSQL.
    pub url: String,
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://path` or a bare path is SQLite.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("it is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            return Ok(Self { backend: Backend::Postgres, url: raw.to_owned() });
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path".into());
            }
            return Ok(Self { backend: Backend::Sqlite, url: path.to_owned() });
        }
        if let Some(path) = raw.strip_prefix("sqlite:") {
            return Ok(Self { backend: Backend::Sqlite, url: path.to_owned() });
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "unknown scheme `{scheme}` (use postgres://, postgresql://, sqlite:// or a file path)"
            ));
        }
        Ok(Self { backend: Backend::Sqlite, url: raw.to_owned() })
    }
}

impl DatabaseUrl {
    /// Which database this is, for a person to check: the absolute path of a SQLite file (a relative
    /// path depends on the working directory), or the host and database name of PostgreSQL. Never the
    /// password or any other part of the URL.
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Sqlite if self.url == ":memory:" => "SQLite in memory".to_owned(),
            Backend::Sqlite => {
                let path = std::path::Path::new(&self.url);
                let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
                format!("SQLite file {}", shown.display())
            }
            Backend::Postgres => match url::Url::parse(&self.url) {
                Ok(url) => {
                    let host = url.host_str().unwrap_or("localhost");
                    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                    let name = url.path().trim_start_matches('/');
                    let name = if name.is_empty() { url.username() } else { name };
                    format!("PostgreSQL database `{name}` on {host}{port}")
                }
                Err(_) => "PostgreSQL".to_owned(),
            },
        }
    }
}
