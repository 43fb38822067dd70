//! Decides, when the tests are built, which of them can run here, so that `cargo test` reports the
//! others as *ignored* with the reason instead of counting them as passed:
//!
//! - `dashboard_test_postgres`: `TEST_DATABASE_URL` is set (the PostgreSQL variant of every
//!   database-facing test runs);
//! - `dashboard_test_browser`: Chromium and chromedriver are installed, or `DASHBOARD_REQUIRE_BROWSER=1`;
//! - `dashboard_test_cloud`: the Secrets Manager emulator (`moto[server]`) can be imported or
//!   `TEST_AWS_ENDPOINT_URL` names one, or `DASHBOARD_REQUIRE_CLOUD=1`;
//! - `dashboard_test_nginx`: nginx and openssl are installed (the deployment test, which also needs
//!   PostgreSQL), or `DASHBOARD_REQUIRE_NGINX=1`.
//!
//! `DASHBOARD_REQUIRE_…=1` (set by `.ci/run`) turns the test on whatever is installed, so a missing
//! tool fails it instead of hiding it. The flags only touch `#[cfg_attr(…, ignore)]` in `tests/`;
//! the program is the same either way. Changing one of these variables rebuilds the crate once.

use std::path::Path;
use std::process::{Command, Stdio};

fn main() {
    for cfg in [
        "dashboard_test_postgres",
        "dashboard_test_browser",
        "dashboard_no_chromedriver",
        "dashboard_test_cloud",
        "dashboard_test_nginx",
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!("cargo::rerun-if-changed=build.rs");
    for var in [
        "TEST_DATABASE_URL",
        "DASHBOARD_REQUIRE_BROWSER",
        "DASHBOARD_REQUIRE_CLOUD",
        "DASHBOARD_REQUIRE_NGINX",
        "TEST_AWS_ENDPOINT_URL",
        "PATH",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    // Debian installs chromium, chromedriver and openssl here, nginx in /usr/sbin: installing them
    // rebuilds the tests to run.
    for dir in ["/usr/bin", "/usr/sbin"] {
        if Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }

    if set("TEST_DATABASE_URL") {
        println!("cargo::rustc-cfg=dashboard_test_postgres");
    }
    if required("DASHBOARD_REQUIRE_BROWSER") || (on_path("chromedriver") && chromium_installed()) {
        println!("cargo::rustc-cfg=dashboard_test_browser");
    }
    // Which one is missing, so the reason a browser test is ignored names the tool and its package.
    if !on_path("chromedriver") {
        println!("cargo::rustc-cfg=dashboard_no_chromedriver");
    }
    if required("DASHBOARD_REQUIRE_CLOUD") || set("TEST_AWS_ENDPOINT_URL") || moto_installed() {
        println!("cargo::rustc-cfg=dashboard_test_cloud");
    }
    if required("DASHBOARD_REQUIRE_NGINX") || (nginx_installed() && on_path("openssl")) {
        println!("cargo::rustc-cfg=dashboard_test_nginx");
    }
}

fn set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// The same places `tests/api/browser.rs` looks.
fn chromium_installed() -> bool {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].iter().any(|p| Path::new(p).exists())
}

/// The same places `tests/api/deploy.rs` looks.
fn nginx_installed() -> bool {
    on_path("nginx") || Path::new("/usr/sbin/nginx").is_file()
}

fn moto_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
