//! The only way out of the sandbox: a Unix socket in a private 0700 directory, bind-mounted
//! into the sandbox. Outside, each connection on it is relayed to the proxy's TCP port; inside,
//! egress-run listens on 127.0.0.1:3128 of the sandbox's own loopback and relays each
//! connection to that socket. No socat, no Node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Outside: serves `socket`, relaying to the proxy at `proxy`.
pub fn serve_outside(
    socket: &Path,
    proxy: SocketAddr,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = UnixListener::bind(socket)?;
    Ok(async move {
        loop {
            let Ok((mut inside, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut proxy) = TcpStream::connect(proxy).await {
                    let _ = copy_bidirectional(&mut inside, &mut proxy).await;
                }
            });
        }
    })
}

/// Inside: listens on `listen` and relays every connection to `socket`.
pub async fn serve_inside(listener: TcpListener, socket: PathBuf) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Ok(mut bridge) = UnixStream::connect(&socket).await {
                let _ = copy_bidirectional(&mut client, &mut bridge).await;
            }
        });
    }
}
