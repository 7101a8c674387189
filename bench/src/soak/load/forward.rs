//! Plain-HTTP forwarding through the proxy: keep-alive sessions of GET and POST, and single
//! requests to the denied and flip targets.

use std::io::{self, Write};

use super::{http_request, Kind, Loop, Proto, Trouble};
use crate::wire::Conn;

impl Loop<'_> {
    /// A plain-HTTP keep-alive session: 2–8 requests, GET and POST, mostly to the allowed
    /// target, some to the flip and denied ones (a refusal closes; the session goes on on a new
    /// connection). The next request on a connection whose last answer promised keep-alive
    /// must be answered.
    pub(super) fn forward_session(&mut self) {
        let n = 2 + self.below(7);
        let mut conn: Option<Conn> = None;
        for _ in 0..n {
            if self.shared.over() {
                return;
            }
            let kind = match self.below(10) {
                0 => Kind::Denied,
                1 => Kind::Flip,
                _ => Kind::Allowed,
            };
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => match self.dial() {
                    Ok(c) => c,
                    Err(t) => {
                        self.trouble(Proto::Forward, kind, t);
                        continue;
                    }
                },
            };
            match self.forward_request(&mut c, kind, reused) {
                Ok(true) => conn = Some(c),
                Ok(false) => {}
                Err(t) => self.trouble(Proto::Forward, kind, t),
            }
        }
    }

    pub(super) fn forward_one(&mut self, kind: Kind) {
        match self.dial() {
            Ok(mut c) => {
                if let Err(t) = self.forward_request(&mut c, kind, false) {
                    self.trouble(Proto::Forward, kind, t);
                }
            }
            Err(t) => self.trouble(Proto::Forward, kind, t),
        }
    }

    /// One plain-HTTP request through the proxy; `Ok(true)` when the connection stays usable.
    fn forward_request(
        &mut self,
        conn: &mut Conn,
        kind: Kind,
        reused: bool,
    ) -> Result<bool, Trouble> {
        let target = self.target(kind);
        let (method, path, body) = self.next_request();
        let url = format!("http://{target}{path}");
        let request = http_request(method, &url, &target.to_string(), &body, false);
        self.count_request(Proto::Forward);
        let io = |e| Trouble::Io("plain-HTTP request", e);
        conn.stream().write_all(&request).map_err(io)?;
        let head = match conn.read_head_or_eof() {
            Ok(Some(head)) => head,
            Ok(None) => {
                let what = if reused {
                    "kept-alive connection closed under the next request"
                } else {
                    "closed without an answer"
                };
                self.wrong(Proto::Forward, kind, what, &format!("{method} {url}"));
                return Ok(false);
            }
            Err(e) if reused && e.kind() == io::ErrorKind::ConnectionReset => {
                self.wrong(
                    Proto::Forward,
                    kind,
                    "kept-alive connection reset under the next request",
                    &format!("{method} {url}"),
                );
                return Ok(false);
            }
            Err(e) => return Err(io(e)),
        };
        let got = conn.read_body(&head, true).map_err(io)?;
        if head.status() != Some(200) {
            self.check_refusal(Proto::Forward, kind, &head, &got);
            return Ok(false);
        }
        self.seen(Proto::Forward, "allow", "none");
        if kind == Kind::Denied {
            self.wrong(
                Proto::Forward,
                kind,
                "denied target let through",
                &head.start_line,
            );
            return Ok(false);
        }
        if !self.check_served(
            Proto::Forward,
            kind,
            target,
            (method, &path, &body),
            &head,
            &got,
        ) {
            return Ok(false);
        }
        if conn.unread() > 0 {
            self.wrong(
                Proto::Forward,
                kind,
                "bytes after the answer",
                &format!("{} unasked bytes after {method} {path}", conn.unread()),
            );
            return Ok(false);
        }
        Ok(head.keeps_alive())
    }
}
