"""The origin of the transparent-mode tests: plain HTTP on [::]:80 and TLS on [::]:443 (both
families), answering every request with what it saw: the address it was reached at, the Host
header and the TLS server name (SNI). Prints "ready" once both ports listen.

Usage: origin.py CERT KEY
"""

import http.server
import socket
import ssl
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        local = self.connection.getsockname()[0]
        if local.startswith("::ffff:"):
            local = local[len("::ffff:"):]
        sni = getattr(self.connection, "egress_sni", None)
        body = f"origin at={local} host={self.headers.get('Host')} sni={sni}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class TlsServer(Server):
    def __init__(self, address, context):
        self.context = context
        super().__init__(address, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True), addr

    def handle_error(self, request, client_address):
        pass  # a refused or aborted handshake is not the origin's business


def remember_sni(sock, name, _context):
    sock.egress_sni = name


def main():
    cert, key = sys.argv[1], sys.argv[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = remember_sni
    servers = [Server(("::", 80), Handler), TlsServer(("::", 443), context)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


main()
