//! The `periscope` binary: reads the flags (blank flag variables count as
//! unset), turns clap's errors into one line, and runs the command.

use clap::error::ErrorKind;
use clap::Parser;

/// mimalloc (the request path allocates small buffers at a high rate, which
/// glibc's allocator serves measurably slower, see `make bench-mock`), and
/// one heap shared by scripted VUs' threads (see `periscope::alloc`).
#[global_allocator]
static GLOBAL: periscope::alloc::Allocator = periscope::alloc::Allocator;

/// Environment variables the flags read: a blank one (`export OPENAI_BASE_URL=`)
/// means unset, not an empty value that conflicts with `--mock`.
const FLAG_ENV: [&str; 4] = [
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "INFLUX_USERNAME",
    "INFLUX_PASSWORD",
];

fn main() {
    // `.env` first: the flags read the environment. Help and version stay
    // quiet and fast.
    let quiet = std::env::args()
        .skip(1)
        .all(|a| matches!(a.as_str(), "--version" | "-V" | "--help" | "-h" | "help"));
    if !quiet {
        match periscope::dotenv::load(std::path::Path::new(".env")) {
            Ok(set) if !set.is_empty() => {
                eprintln!("read .env: {} (values not shown)", set.join(", "))
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e}: fix the line or move the file");
                std::process::exit(periscope::error::exit::USAGE);
            }
        }
    }
    for name in FLAG_ENV {
        if std::env::var_os(name).is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
            // Single-threaded here: nothing else reads the environment yet.
            std::env::remove_var(name);
        }
    }
    let args = match periscope::cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                eprint!("{}", e.render());
                std::process::exit(periscope::error::exit::USAGE);
            }
            _ => {
                // One line that says what to fix, and exit 1 (a usage error).
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("error: bad arguments");
                eprintln!("{first}");
                std::process::exit(periscope::error::exit::USAGE);
            }
        },
    };
    std::process::exit(periscope::main_with(args));
}
