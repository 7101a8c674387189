//! The SOCKS5 greeting, password sub-negotiation and request, driven by in-memory bytes. The
//! handshake must end (target or error) on any input without panicking, and never write more
//! than its fixed-size replies.
#![no_main]

use std::io;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use egress_proxy::socks5;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads from the fuzz input, then EOF; collects what the handshake writes.
struct Scripted<'a> {
    input: &'a [u8],
    written: Vec<u8>,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.input.len());
        let (now, rest) = self.input.split_at(n);
        buf.put_slice(now);
        self.input = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut stream = Scripted { input: data, written: Vec::new() };
    // Logins on, every login accepted: the parser is what is fuzzed here.
    let mut handshake = Box::pin(socks5::handshake(&mut stream, true, |_| async { Ok::<_, egress_proxy::answer::Refusal>(()) }));
    // Every read and write is ready at once, so one poll must finish the handshake: a Pending
    // here would be a handshake waiting on something other than its client.
    let mut cx = Context::from_waker(Waker::noop());
    let result = match handshake.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("handshake pending on in-memory input"),
    };
    drop(handshake);
    if let Ok(((), host, port)) = result {
        assert_ne!(port, 0, "port 0 accepted");
        let _ = host.authority(port);
    }
    // Method choice (2) + password status (2): the reply to the request is written by the caller.
    assert!(stream.written.len() <= 4, "wrote {:?}", stream.written);
});
