#!/usr/bin/env bash
# Lints the workspace as a Mac would build it (aarch64-apple-darwin, and x86_64 with --both),
# from Linux, without an Apple SDK: `cargo clippy` type-checks every crate for the target,
# which catches what is compiled but unused there (dead code behind the wrong cfg) and code
# that does not compile there at all. Nothing is linked or run: that needs a Mac (see
# docs/macos.md).
#
# The C parts of two dependencies (ring, signal-hook's siginfo helper) are compiled by their
# build scripts even for `clippy`; with no SDK, clang gets a few stub headers instead of
# Apple's. The objects made that way are never linked, only their Rust callers checked.
# libgssapi-sys runs bindgen over the GSSAPI headers: without Apple's GSS framework it is
# pointed at MIT's (libkrb5-dev, the same API) with a stub <sys/types.h>, which is enough for
# the declarations the safe binding uses.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(aarch64-apple-darwin)
[ "${1:-}" = "--both" ] && targets+=(x86_64-apple-darwin)

clang=$(command -v clang || ls /usr/lib/llvm-*/bin/clang 2>/dev/null | tail -1 || true)
[ -n "$clang" ] || { echo "macos-clippy: clang is needed (apt-get install clang)" >&2; exit 1; }
ar=$(command -v llvm-ar || ls "$(dirname "$clang")"/llvm-ar 2>/dev/null || command -v ar)

stub=target/macos-stub/include
mkdir -p "$stub"
printf '#define TARGET_OS_OSX 1\n#define TARGET_OS_IPHONE 0\n#define TARGET_OS_MAC 1\n' \
  >"$stub/TargetConditionals.h"
printf '#define assert(x) ((void)0)\n' >"$stub/assert.h"
cat >"$stub/string.h" <<'EOF'
#include <stddef.h>
void *memcpy(void *, const void *, size_t);
void *memmove(void *, const void *, size_t);
void *memset(void *, int, size_t);
int memcmp(const void *, const void *, size_t);
EOF
# Darwin's values, for signal-hook's extract.c.
cat >"$stub/signal.h" <<'EOF'
#include <stddef.h>
typedef int pid_t;
typedef unsigned int uid_t;
typedef struct { int si_signo; int si_errno; int si_code; pid_t si_pid; uid_t si_uid; } siginfo_t;
#define SI_USER 0x10001
#define SI_QUEUE 0x10002
#define SI_MESGQ 0x10005
#define SIGCHLD 20
#define CLD_EXITED 1
#define CLD_KILLED 2
#define CLD_DUMPED 3
#define CLD_TRAPPED 4
#define CLD_STOPPED 5
#define CLD_CONTINUED 6
EOF

gss_stub=target/macos-stub/gssapi
mkdir -p "$gss_stub/sys"
printf '#include <stddef.h>\ntypedef long ssize_t;\ntypedef unsigned int uid_t;\ntypedef unsigned int gid_t;\ntypedef int pid_t;\n' \
  >"$gss_stub/sys/types.h"

for target in "${targets[@]}"; do
  rustup target add "$target" >/dev/null 2>&1 || true
  var=${target//-/_}
  env "CC_$var=$clang" "AR_$var=$ar" \
    "CFLAGS_$var=-ffreestanding -nostdlibinc -isystem $PWD/$stub" \
    LIBGSSAPI_IMPL=mit \
    "BINDGEN_EXTRA_CLANG_ARGS_$var=-ffreestanding -nostdlibinc -isystem $PWD/$stub -isystem $PWD/$gss_stub -idirafter /usr/include" \
    cargo clippy --workspace --all-targets --locked --target "$target" -- -D warnings
done
