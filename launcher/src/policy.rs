//! The embedded proxy's policy: a file (`--policy`), the built-in default, or the default with
//! `--allow`/`--deny` entries on top.

use std::path::Path;

use anyhow::{anyhow, Context};
use egress_config::{Config, Pattern, Policy};

pub fn build(file: Option<&Path>, allow: &[String], deny: &[String]) -> anyhow::Result<Config> {
    let mut config = match file {
        Some(path) => egress_config::load_file(path).map_err(|e| anyhow!("{e}"))?,
        None if allow.is_empty() && deny.is_empty() => egress_config::default_config(),
        // Only what the command line names: `--allow` means "this, and nothing else".
        None => egress_config::load_str("", "<command line>").map_err(|e| anyhow!("{e}"))?,
    };
    if allow.is_empty() && deny.is_empty() {
        return Ok(config);
    }
    let parse = |text: &String| {
        Pattern::parse(text).map_err(|e| anyhow!("invalid pattern {text:?}: {}", e.message))
    };
    let mut allowed: Vec<Pattern> = config.policy.allow().to_vec();
    let mut denied: Vec<Pattern> = config.policy.deny().to_vec();
    for text in allow {
        allowed.push(parse(text).context("--allow")?);
    }
    for text in deny {
        denied.push(parse(text).context("--deny")?);
    }
    config.policy = Policy::new(config.policy.mode(), allowed, denied);
    Ok(config)
}
