//! `modelshare apps`: publish, withdraw and list the apps shown by name, in
//! `<lake>/public-apps.json` (a running server picks the change up on its next read).

use crate::config::{AppsArgs, AppsCommand};
use anyhow::Context;
use modelshare_web::public_apps;
use std::process::ExitCode;

pub fn run(args: AppsArgs) -> anyhow::Result<ExitCode> {
    let root = &args.lake.data_dir;
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create the lake directory {}", root.display()))?;
    match args.which {
        AppsCommand::Publish { app, name, url } => {
            let a = public_apps::publish(root, &app, &name, url.as_deref())?;
            println!(
                "app {:?} is shown as {:?} at /apps/{}",
                a.app_id, a.name, a.slug
            );
        }
        AppsCommand::Withdraw { app } => {
            let a = public_apps::withdraw(root, &app)?;
            println!("app {:?} is no longer shown (was {:?})", a.app_id, a.name);
        }
        AppsCommand::List => {
            println!("{:<24} {:<22} {:<32} url", "slug", "published", "app");
            for a in public_apps::list(root)? {
                println!(
                    "{:<24} {:<22} {:<32} {}",
                    a.slug,
                    a.published,
                    a.app_id,
                    a.url.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
