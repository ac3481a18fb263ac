//! Empty: cargo builds a crate's build-dependencies only when it has a build script, and this
//! crate's build-dependencies exist for their features (see `Cargo.toml`).
fn main() {}
