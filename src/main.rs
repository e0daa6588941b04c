use clap::error::ErrorKind;
use clap::Parser;

/// mimalloc: the request path allocates small buffers at a high rate, which
/// glibc's allocator serves measurably slower (see `make bench-mock`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
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
