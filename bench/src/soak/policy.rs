//! The policy files the soak writes, and the ways it writes them.
//!
//! Three loopback targets, all IP literals (no DNS; an allow entry naming the address is the
//! address guard's exception for it):
//! - `allowed` is allowed in every variant;
//! - `denied` is allowed *and* denied, the deny list last in the file, so a reload that applies a
//!   file cut before its `deny` list lets it through, and the soak sees it;
//! - `flip` is allowed in variant A only. In B its host is still named (by the other entries), so
//!   the policy's answer is `port-not-allowed`, not `not-allowlisted` (README, rules 3 and 4).

use std::io::Write;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the flip target is refused under variant B.
pub const FLIP_REFUSAL: &str = "port-not-allowed";

#[derive(Debug, Clone, Copy)]
pub struct Targets {
    pub allowed: SocketAddrV4,
    pub denied: SocketAddrV4,
    pub flip: SocketAddrV4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    A,
    B,
}

impl Variant {
    pub fn other(self) -> Variant {
        match self {
            Variant::A => Variant::B,
            Variant::B => Variant::A,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub path: PathBuf,
    pub targets: Targets,
    pub audit: PathBuf,
}

impl PolicyFile {
    /// The file's lines, in pieces as the slow writer sends them: the settings, then each allow
    /// entry, then the deny list.
    pub fn pieces(&self, variant: Variant) -> Vec<String> {
        let t = &self.targets;
        let name = match variant {
            Variant::A => "A",
            Variant::B => "B",
        };
        let mut pieces = vec![
            format!(
                "# egress soak policy, variant {name} (written by bench/soak.sh)\n\
                 listen: 127.0.0.1:0\n\
                 admin: 127.0.0.1:0\n\
                 audit: {{ path: \"{}\" }}\n\
                 timeouts: {{ shutdown_grace: 5s }}\n",
                self.audit.display()
            ),
            format!("allow:\n  - \"{}\"\n", t.allowed),
            format!(
                "  - \"{}\"   # also denied below: the deny list must win\n",
                t.denied
            ),
        ];
        if variant == Variant::A {
            pieces.push(format!("  - \"{}\"   # variant A only\n", t.flip));
        }
        pieces.push("deny:\n".to_string());
        pieces.push(format!("  - \"{}\"\n", t.denied));
        pieces
    }

    pub fn text(&self, variant: Variant) -> String {
        self.pieces(variant).concat()
    }

    /// Not YAML: the proxy must reject it and keep the policy it has.
    pub fn broken_text(&self) -> String {
        format!(
            "listen: 127.0.0.1:0\nallow: [\"{}\"\n  - broken: [\n",
            self.targets.allowed
        )
    }

    /// Write a sibling, rename it over the file: how tools and ConfigMaps replace a file.
    pub fn replace(&self, text: &str) -> std::io::Result<()> {
        let next = sibling(&self.path, ".policy.yaml.next");
        std::fs::write(&next, text)?;
        std::fs::rename(&next, &self.path)
    }

    /// Truncate in place, then write `pieces` with `gap` between them: an editor or
    /// `cat > policy.yaml` on a slow pipe. Every moment of it is a partial file on disk.
    pub fn rewrite_slowly(&self, pieces: &[String], gap: Duration) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        for piece in pieces {
            std::thread::sleep(gap);
            file.write_all(piece.as_bytes())?;
        }
        Ok(())
    }
}

fn sibling(path: &Path, name: &str) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(name)
}
