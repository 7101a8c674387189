//! Tunnels: CONNECT and SOCKS5 to a target, its answer checked, then 1–3 HTTP requests inside.

use std::io::{self, Write};
use std::net::SocketAddrV4;

use super::{http_request, Kind, Loop, Proto, Trouble};
use crate::policy::FLIP_REFUSAL;
use crate::wire::{socks5_connect, Conn};

impl Loop<'_> {
    /// One CONNECT or SOCKS5 tunnel to `kind`'s target; when it opens, 1–3 requests inside.
    pub(super) fn tunnel(&mut self, proto: Proto, kind: Kind) {
        if let Err(t) = self.tunnel_inner(proto, kind) {
            self.trouble(proto, kind, t);
        }
    }

    fn tunnel_inner(&mut self, proto: Proto, kind: Kind) -> Result<(), Trouble> {
        let target = self.target(kind);
        let mut conn = self.dial()?;
        self.count_request(proto);
        let opened = match proto {
            Proto::Connect => self.connect_answer(&mut conn, kind, target)?,
            _ => self.socks5_answer(&mut conn, kind, target)?,
        };
        if !opened {
            return Ok(());
        }
        let inside = 1 + self.below(3);
        for i in 0..inside {
            let (method, path, body) = self.next_request();
            let last = i + 1 == inside;
            let request = http_request(method, &path, &target.to_string(), &body, last);
            let io = |e| Trouble::Io("request inside the tunnel", e);
            conn.stream().write_all(&request).map_err(io)?;
            let head = match conn.read_head_or_eof().map_err(io)? {
                Some(head) => head,
                None => {
                    self.wrong(
                        proto,
                        kind,
                        "tunnel closed under a request",
                        &format!("request {} of {inside} inside", i + 1),
                    );
                    return Ok(());
                }
            };
            let got = conn.read_body(&head, true).map_err(io)?;
            self.tally.inner += 1;
            if !self.check_served(proto, kind, target, (method, &path, &body), &head, &got) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends CONNECT and reads its answer; `true` when the tunnel is open.
    fn connect_answer(
        &mut self,
        conn: &mut Conn,
        kind: Kind,
        target: SocketAddrV4,
    ) -> Result<bool, Trouble> {
        let io = |e| Trouble::Io("CONNECT", e);
        conn.stream()
            .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .map_err(io)?;
        let Some(head) = conn.read_head_or_eof().map_err(io)? else {
            self.wrong(Proto::Connect, kind, "closed without an answer", "CONNECT");
            return Ok(false);
        };
        if head.status() == Some(200) {
            self.seen(Proto::Connect, "allow", "none");
            if kind == Kind::Denied {
                self.wrong(
                    Proto::Connect,
                    kind,
                    "denied target let through",
                    &head.start_line,
                );
                return Ok(false);
            }
            return Ok(true);
        }
        let body = conn.read_body(&head, true).map_err(io)?;
        self.check_refusal(Proto::Connect, kind, &head, &body);
        Ok(false)
    }

    fn socks5_answer(
        &mut self,
        conn: &mut Conn,
        kind: Kind,
        target: SocketAddrV4,
    ) -> Result<bool, Trouble> {
        let code = match socks5_connect(conn, target) {
            Ok(code) => code,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.wrong(
                    Proto::Socks5,
                    kind,
                    "closed without an answer",
                    &e.to_string(),
                );
                return Ok(false);
            }
            Err(e) => return Err(Trouble::Io("SOCKS5 negotiation", e)),
        };
        match (code, kind) {
            (0, Kind::Denied) => {
                self.seen(Proto::Socks5, "allow", "none");
                self.wrong(
                    Proto::Socks5,
                    kind,
                    "denied target let through",
                    "reply 0x00",
                );
                Ok(false)
            }
            (0, _) => {
                self.seen(Proto::Socks5, "allow", "none");
                Ok(true)
            }
            (2, Kind::Denied) => {
                self.seen(Proto::Socks5, "deny", "blocked-by-denylist");
                Ok(false)
            }
            (2, Kind::Flip) => {
                self.seen(Proto::Socks5, "deny", FLIP_REFUSAL);
                Ok(false)
            }
            (code, _) => {
                self.wrong(
                    Proto::Socks5,
                    kind,
                    "wrong SOCKS5 reply",
                    &format!("reply 0x{code:02x}"),
                );
                Ok(false)
            }
        }
    }
}
