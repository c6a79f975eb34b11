//! `server`: runs Code Import, or one of its administrative commands (`server help`).

use std::process::ExitCode;

use server::cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // `LOG_FORMAT=json`: one JSON object per line, for a log aggregator, with the request's or
    // the operation's id among its `spans`; the human format otherwise.
    if std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json") {
        tracing_subscriber::fmt().json().with_current_span(false).with_span_list(true).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("error: {problem}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match server::execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Makes every allocation of 1 MiB or more a mapping of its own, returned to the system when
/// freed. glibc otherwise raises that threshold after the first free of a large block and keeps
/// later ones in per-thread heaps: each Argon2id hash (19 MiB) on another blocking thread then
/// stayed resident — 40 sign-ins at once left a server at ~600 MiB even with hashing bounded.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of glibc's allocator; called before any large
    // allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
