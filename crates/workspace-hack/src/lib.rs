//! No code. This crate's manifest lists dependency features the Ballista build turns on, so that
//! the default build compiles them too and `--features ballista` reuses its DataFusion, arrow and
//! tokio instead of compiling them again (see the comment in its `Cargo.toml`).
