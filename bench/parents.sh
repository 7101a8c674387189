#!/usr/bin/env bash
# New tunnels per second through corporate parents, not a test: one curl (one CONNECT tunnel,
# one GET inside it) per run, hyperfine's mean, RUNS runs each (default 200). Contenders:
#   Kerberos: curl --proxy-negotiate straight to a Squid requiring Negotiate, against curl
#   through egress-proxy with `auth: negotiate` to the same Squid;
#   TLS: egress-proxy to Squid's https_port, against egress-proxy to the same Squid's http_port.
# Everything on loopback: an MIT KDC for a throwaway realm, Squid, a python3 origin, all in a
# temporary directory removed at the end. Installs hyperfine and the Kerberos packages when
# missing. Prints each mean and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-200}"
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for need in hyperfine:hyperfine squid:squid krb5kdc:krb5-kdc kadmin.local:krb5-admin-server kinit:krb5-user openssl:openssl; do
  command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cargo build --release -q -p egress-proxy
egress="$PWD/target/release/egress-proxy"

work=$(mktemp -d /tmp/egress-parents-bench.XXXXXX)
chmod 755 "$work"
. bench/common.sh
wait_port() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    python3 -c 'import time; time.sleep(0.05)'
  done
  echo "nothing listens on $1" >&2; exit 1
}

# The origin: a small file over plain HTTP.
mkdir "$work/www" && echo "hello from origin" >"$work/www/hello"
origin=$(port)
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$origin" >/dev/null 2>&1 &
pids+=($!)

# The realm: KDC on TCP, HTTP/localhost for Squid, egress's keytab, a user for curl.
realm=BENCH.TEST kdc=$(port)
cat >"$work/krb5.conf" <<EOF
[libdefaults]
	default_realm = $realm
	dns_lookup_kdc = false
	rdns = false
	dns_canonicalize_hostname = false
	udp_preference_limit = 1
[realms]
	$realm = {
		kdc = 127.0.0.1:$kdc
	}
[domain_realm]
	localhost = $realm
EOF
cat >"$work/kdc.conf" <<EOF
[kdcdefaults]
	kdc_listen = 127.0.0.1:$kdc
	kdc_tcp_listen = 127.0.0.1:$kdc
[realms]
	$realm = {
		database_name = $work/principal
		key_stash_file = $work/stash
		acl_file = $work/kadm5.acl
	}
EOF
: >"$work/kadm5.acl"
export KRB5_CONFIG="$work/krb5.conf" KRB5_KDC_PROFILE="$work/kdc.conf"
kdb5_util create -s -r "$realm" -P bench-master >/dev/null
for query in "addprinc -randkey HTTP/localhost" "ktadd -k $work/http.keytab HTTP/localhost" \
  "addprinc -randkey egress" "ktadd -k $work/egress.keytab egress" "addprinc -pw bench-pw user"; do
  kadmin.local -r "$realm" -q "$query" >/dev/null 2>&1
done
chmod 644 "$work/http.keytab"
krb5kdc -n -r "$realm" >/dev/null 2>&1 &
pids+=($!)
wait_port "$kdc"
export KRB5CCNAME="FILE:$work/user.ccache"
echo bench-pw | kinit user >/dev/null

# The parent's certificate, from a throwaway CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/squid.key" -out "$work/squid.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$work/san.ext"
openssl x509 -req -in "$work/squid.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile "$work/san.ext" -out "$work/squid.pem" 2>/dev/null
chmod 644 "$work"/*.pem "$work"/*.key

# Two Squids: one requiring Negotiate, one open on http_port and https_port.
start_squid() { # name, config lines
  local dir="$work/$1"; mkdir "$dir"; chmod 777 "$dir"
  printf '127.0.0.1 localhost allowed.test\n' >"$dir/hosts"
  cat >"$dir/squid.conf" <<EOF
visible_hostname bench
pid_filename $dir/squid.pid
cache_log $dir/cache.log
access_log none
cache deny all
hosts_file $dir/hosts
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
$2
http_access allow all
EOF
  squid -N -n "bench$1$$" -f "$dir/squid.conf" >/dev/null 2>&1 &
  pids+=($!)
}
krb_port=$(port) plain_port=$(port) tls_port=$(port)
start_squid krb "http_port 127.0.0.1:$krb_port
auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k $work/http.keytab -s GSS_C_NO_NAME -c $work/krb
auth_param negotiate children 10
acl authed proxy_auth REQUIRED
http_access deny !authed"
start_squid open "http_port 127.0.0.1:$plain_port
https_port 127.0.0.1:$tls_port tls-cert=$work/squid.pem tls-key=$work/squid.key"
wait_port "$krb_port"; wait_port "$plain_port"; wait_port "$tls_port"

# Three egress-proxies, one per parent.
proxy() { # name, port, upstream keys
  local port=$2
  cat >"$work/$1.yaml" <<EOF
listen: 127.0.0.1:$port
allow: ["allowed.test:*"]
upstreams:
  corp:
$3
route:
  default: corp
EOF
  "$egress" --config "$work/$1.yaml" --log-level warn >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
}
e_krb=$(port) e_plain=$(port) e_tls=$(port)
proxy krb "$e_krb" "    url: http://localhost:$krb_port
    auth: negotiate
    keytab: $work/egress.keytab"
proxy plain "$e_plain" "    url: http://localhost:$plain_port"
proxy tls "$e_tls" "    url: https://localhost:$tls_port
    ca_file: $work/ca.pem"

url="http://allowed.test:$origin/hello"
c="curl -sf -o /dev/null --noproxy '' -p"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" \
  -n "curl --proxy-negotiate -> Kerberos Squid" "$c --proxy-negotiate -U : -x http://localhost:$krb_port $url" \
  -n "curl -> egress -> Kerberos Squid" "$c -x http://127.0.0.1:$e_krb $url" \
  -n "curl -> egress -> Squid (plain TCP)" "$c -x http://127.0.0.1:$e_plain $url" \
  -n "curl -> egress -> Squid (TLS)" "$c -x http://127.0.0.1:$e_tls $url" >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
rate = {r["command"]: 1 / r["mean"] for r in results}
for name, r in rate.items():
    print(f"{name:45} {r:8.1f} tunnels/s")
names = list(rate)
print(f"egress Kerberos / curl --proxy-negotiate: {rate[names[1]] / rate[names[0]]:.2f}")
print(f"egress TLS parent / plain-TCP parent:     {rate[names[3]] / rate[names[2]]:.2f}")
PY
