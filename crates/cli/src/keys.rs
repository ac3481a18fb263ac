//! `modelshare keys`: create, list and revoke ingest/admin keys in `<lake>/keys.json`.

use crate::config::{KeysArgs, KeysCommand};
use anyhow::Context;
use modelshare_web::keys;
use std::process::ExitCode;

pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let root = &args.lake.data_dir;
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create the lake directory {}", root.display()))?;
    match args.which {
        KeysCommand::Create { app, admin } => {
            let (record, secret) = keys::create(root, &app, admin)?;
            eprintln!(
                "created key {} for app {:?}{}; it is shown only now:",
                record.id,
                record.app_id,
                if admin { " (admin)" } else { "" }
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            println!(
                "{:<14} {:<8} {:<22} {:<22} app",
                "id", "role", "created", "revoked"
            );
            for k in keys::list(root)? {
                println!(
                    "{:<14} {:<8} {:<22} {:<22} {}",
                    k.id,
                    if k.admin { "admin" } else { "ingest" },
                    k.created,
                    k.revoked.as_deref().unwrap_or("-"),
                    k.app_id
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let k = keys::revoke(root, &id)?;
            println!("revoked key {} (app {:?})", k.id, k.app_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
