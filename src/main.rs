//! The `dashboard` binary: parse the command line and hand over to the library.

/// mimalloc: a page request allocates and frees many small objects, several of them across threads
/// (the session lookup thread answers the workers). Measured on a signed-in `GET /`: 18.1 µs of
/// server CPU per request against 19.9 µs with glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v3); the Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_os_tag`, whose default (100) is distinctive enough to check the numbering by.
const MI_OPTION_OS_TAG: libmimalloc_sys::mi_option_t = 18;

fn main() -> std::process::ExitCode {
    // Each argon2 hash takes 19 MiB and frees it. mimalloc keeps freed memory for a while (1 s),
    // long enough for the next sign-in on another thread to take fresh memory, so a burst of sign-ins
    // stacked up blocks (peak RSS 65 MiB after 64 sign-ins, 54 MiB with immediate purging).
    // SAFETY: plain option getters/setters of the allocator, called before any other thread exists.
    unsafe {
        // Only if the option numbering is the one this was written against.
        if libmimalloc_sys::mi_option_get(MI_OPTION_OS_TAG) == 100 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
    dashboard::cli::main()
}
