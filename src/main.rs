//! The `modelshare` binary: everything lives in `modelshare-cli`.

fn main() -> std::process::ExitCode {
    modelshare_cli::run()
}
