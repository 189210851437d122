//! This workspace's `cargo xtask`: the D1 commands of the `d1-xtask` library, as any
//! team's xtask would use them.

fn main() -> std::process::ExitCode {
    d1_xtask::main()
}
