//! `pulp`: the host program with every capability this crate's features link.

fn main() -> std::process::ExitCode {
    pulp_host::cli::main()
}
