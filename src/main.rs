//! The `dashboard` binary: parse the command line and hand over to the library.

/// mimalloc: a page request allocates and frees many small objects, several of them across threads
/// (the session lookup thread answers the workers); glibc's malloc took ~15 % of the server's CPU
/// under load, with arena-lock contention on cross-thread frees.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dashboard::cli::main()
}
