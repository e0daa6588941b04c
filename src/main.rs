use clap::Parser;

fn main() {
    let args = periscope::cli::Args::parse();
    std::process::exit(periscope::main_with(args));
}
