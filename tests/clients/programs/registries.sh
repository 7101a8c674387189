#!/bin/sh
# Lays out, under ROOT, what the file server serves as registries at BASE (https://host:port):
#   /hello                       a greeting
#   /simple/egdemo/              a pip simple index with one wheel (PEP 503)
#   /npm/egdemo                  an npm registry's package document and tarball
#   /cargo/index/                a cargo sparse registry (config.json, index file, .crate)
#   /repo.git                    a bare git repository, served by git's "dumb" HTTP protocol
# Every package is made here from a few lines of text; nothing is downloaded.
set -eu
root=$1 base=$2
mkdir -p "$root" && cd "$root"
printf 'hello from origin\n' > hello

# pip: a wheel is a zip with the module and its dist-info.
mkdir -p packages simple/egdemo
/usr/bin/python3 - <<'PY'
import base64, hashlib, zipfile
files = {
    "egdemo/__init__.py": "GREETING = 'hello from egdemo'\n",
    "egdemo-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: egdemo\nVersion: 0.1.0\n",
    "egdemo-0.1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: egress-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(text.encode())}")
record.append("egdemo-0.1.0.dist-info/RECORD,,")
files["egdemo-0.1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile("packages/egdemo-0.1.0-py3-none-any.whl", "w") as wheel:
    for name, text in files.items():
        wheel.writestr(name, text)
PY
wheel_sha=$(sha256sum packages/egdemo-0.1.0-py3-none-any.whl | cut -d' ' -f1)
cat > simple/egdemo/index.html <<HTML
<!DOCTYPE html>
<html><body>
<a href="../../packages/egdemo-0.1.0-py3-none-any.whl#sha256=$wheel_sha">egdemo-0.1.0-py3-none-any.whl</a>
</body></html>
HTML

# npm: the package document names the tarball and its checksums.
mkdir -p npm-src/package npm/egdemo/-
printf '{"name":"egdemo","version":"1.0.0","main":"index.js"}\n' > npm-src/package/package.json
printf 'module.exports = "hello from egdemo";\n' > npm-src/package/index.js
tar -C npm-src -czf npm/egdemo/-/egdemo-1.0.0.tgz package
shasum=$(sha1sum npm/egdemo/-/egdemo-1.0.0.tgz | cut -d' ' -f1)
integrity=sha512-$(openssl dgst -sha512 -binary npm/egdemo/-/egdemo-1.0.0.tgz | base64 -w0)
cat > npm/egdemo/index.json <<JSON
{"name":"egdemo","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":{"name":"egdemo","version":"1.0.0","main":"index.js","dist":{"tarball":"$base/npm/egdemo/-/egdemo-1.0.0.tgz","shasum":"$shasum","integrity":"$integrity"}}}}
JSON

# cargo: a sparse index (config.json, one index line per version) and the .crate (a tar.gz).
mkdir -p cargo-src/egdemo-0.1.0/src cargo/index/eg/de cargo/dl/egdemo/0.1.0
printf '[package]\nname = "egdemo"\nversion = "0.1.0"\nedition = "2021"\n' > cargo-src/egdemo-0.1.0/Cargo.toml
printf 'pub const GREETING: &str = "hello from egdemo";\n' > cargo-src/egdemo-0.1.0/src/lib.rs
tar -C cargo-src -czf cargo/dl/egdemo/0.1.0/download egdemo-0.1.0
cksum=$(sha256sum cargo/dl/egdemo/0.1.0/download | cut -d' ' -f1)
printf '{"dl":"%s/cargo/dl/{crate}/{version}/download"}\n' "$base" > cargo/index/config.json
printf '{"name":"egdemo","vers":"0.1.0","deps":[],"cksum":"%s","features":{},"yanked":false}\n' "$cksum" \
  > cargo/index/eg/de/egdemo

# git: a bare repository with one commit, readable over plain file requests.
git init -q git-src
printf 'hello from git\n' > git-src/README
git -C git-src add README
git -C git-src -c user.name=egress -c user.email=egress@test commit -qm "one file"
git clone -q --bare git-src repo.git
git -C repo.git update-server-info
