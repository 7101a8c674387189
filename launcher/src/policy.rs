//! The embedded proxy's policy: a file (`--policy`), the built-in default, or the default with
//! `--allow`/`--deny` entries on top.

use std::path::Path;

use anyhow::{anyhow, Context};
use egress_config::{Config, Pattern, Policy};

/// `only_named`: the entries are the whole list even when there are none (srt settings: an
/// empty `allowedDomains` means no network, never the built-in list).
pub fn build(
    file: Option<&Path>,
    allow: &[String],
    deny: &[String],
    only_named: bool,
) -> anyhow::Result<Config> {
    let named = !allow.is_empty() || !deny.is_empty() || only_named;
    let mut config = match file {
        Some(path) => egress_config::load_file(path).map_err(|e| anyhow!("{e}"))?,
        None if !named => egress_config::default_config(),
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
