//! `pulp-greet`: the `pulp` program plus the `demo.greet` capability.

use ext_greet as _; // linked, so the registry sees `demo.greet`

fn main() -> std::process::ExitCode {
    pulp_host::cli::main()
}
