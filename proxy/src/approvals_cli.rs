//! `egress-proxy approvals list|allow|deny`: ask mode's approvals from a terminal, through the
//! admin API — for a person whose terminal an agent owns, or for scripts. The token comes from
//! `EGRESS_ADMIN_TOKEN` or a token file (the policy's `admin.token_file`, its default place, or
//! `--token-file`), never from the command line, where other users could read it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

/// What to do.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Approvals {
    /// The pending approvals: id, client, identity, destination, waiting connections, expiry.
    List,
    /// Allow a pending approval: once (default), for N minutes, or always (writes the policy).
    Allow {
        id: String,
        /// Allow this client the destination for this many minutes.
        #[arg(long, conflicts_with = "always")]
        minutes: Option<u64>,
        /// Add an allow entry to the policy file (role admin).
        #[arg(long)]
        always: bool,
        /// With --always: the registrable domain (`.example.com`) instead of the host.
        #[arg(long, requires = "always")]
        domain: bool,
        /// With --always: write the port into the entry.
        #[arg(long, requires = "always")]
        with_port: bool,
    },
    /// Deny a pending approval: once (default), or always (writes a deny entry).
    Deny {
        id: String,
        #[arg(long)]
        always: bool,
        #[arg(long, requires = "always")]
        domain: bool,
        #[arg(long, requires = "always")]
        with_port: bool,
    },
}

/// Where the admin API is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The policy file: its `admin.listen` and token file are used.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The admin listener's address (instead of the policy's `admin.listen`).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// The token file (instead of the policy's); `EGRESS_ADMIN_TOKEN` overrides both.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

pub fn run(target: &Target, what: &Approvals) -> ExitCode {
    match exchange(target, what) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("egress-proxy approvals: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn exchange(target: &Target, what: &Approvals) -> anyhow::Result<String> {
    let settings = match &target.config {
        Some(path) => {
            egress_config::load_file(path)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .admin
        }
        None => None,
    };
    let address = target
        .admin
        .or(settings.as_ref().map(|a| a.listen))
        .context("no admin address: pass --admin ADDR, or --config FILE with an admin: section")?;
    let token = token(target, settings.as_ref())?;
    let (method, path, body) = request(what);
    let (status, answer) = call(address, &token, method, &path, body.as_deref())?;
    let value: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if status != 200 {
        let message = value["message"].as_str().unwrap_or(answer.trim());
        let code = value["error"].as_str().unwrap_or("error");
        bail!("{status} {code}: {message}");
    }
    Ok(match what {
        Approvals::List => table(&value),
        _ => format!("{value}\n"),
    })
}

fn token(target: &Target, settings: Option<&egress_config::Admin>) -> anyhow::Result<String> {
    if let Some(token) = std::env::var_os("EGRESS_ADMIN_TOKEN").filter(|t| !t.is_empty()) {
        return Ok(token.to_string_lossy().trim().to_string());
    }
    let path = match &target.token_file {
        Some(path) => path.clone(),
        None => crate_token_location(settings, target.config.as_deref())?,
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the admin token from {}", path.display()))?;
    Ok(text.trim().to_string())
}

fn crate_token_location(
    settings: Option<&egress_config::Admin>,
    policy: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    egress_proxy::admin::token_location(settings.and_then(|a| a.token_file.as_deref()), policy)
}

fn request(what: &Approvals) -> (&'static str, String, Option<String>) {
    let answer = |id: &str, body: serde_json::Value| {
        let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        (
            "POST",
            format!("/api/v1/approvals/{id}"),
            Some(body.to_string()),
        )
    };
    let scope = |domain: bool| if domain { "domain" } else { "host" };
    match what {
        Approvals::List => ("GET", "/api/v1/approvals".to_string(), None),
        Approvals::Allow {
            id,
            minutes,
            always,
            domain,
            with_port,
        } => {
            let body = match (always, minutes) {
                (true, _) => {
                    serde_json::json!({"action": "allow-always", "scope": scope(*domain), "with_port": with_port})
                }
                (false, Some(m)) => serde_json::json!({"action": "allow-for", "minutes": m}),
                (false, None) => serde_json::json!({"action": "allow-once"}),
            };
            answer(id, body)
        }
        Approvals::Deny {
            id,
            always,
            domain,
            with_port,
        } => {
            let body = if *always {
                serde_json::json!({"action": "deny-always", "scope": scope(*domain), "with_port": with_port})
            } else {
                serde_json::json!({"action": "deny-once"})
            };
            answer(id, body)
        }
    }
}

/// One HTTP/1.1 exchange with the admin listener (plain HTTP, loopback by default).
fn call(
    address: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the admin listener at {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the admin listener's answer has no status")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn table(value: &serde_json::Value) -> String {
    let Some(list) = value.as_array() else {
        return format!("{value}\n");
    };
    if list.is_empty() {
        return "no pending approvals\n".to_string();
    }
    let mut out = String::from("ID\tCLIENT\tIDENTITY\tDESTINATION\tPROTOCOL\tWAITING\tEXPIRES\n");
    for a in list {
        let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}:{}\t{}\t{}\t{}\n",
            s("id"),
            s("client"),
            s("identity"),
            s("host"),
            a["port"],
            s("protocol"),
            a["waiting"],
            s("expires_at")
        ));
    }
    out
}
