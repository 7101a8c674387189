//! The seccomp filter a sandboxed command runs under (after `no_new_privs`). It refuses, with
//! EPERM, what would open a way around the proxy or into other processes: new Unix-domain
//! sockets (a host daemon's socket could carry traffic out; `socketpair` stays allowed),
//! io_uring (syscalls the filter cannot see), ptrace, process_vm_* and pidfd_getfd, terminal injection
//! (TIOCSTI, TIOCLINUX), and new user namespaces. clone3 answers ENOSYS, so libc falls back to
//! clone, whose flags the filter can inspect.

use std::collections::BTreeMap;

use anyhow::Context;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

const AF_UNIX: u64 = libc::AF_UNIX as u64;
const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
// The generic Linux ioctl numbers (the same on x86_64 and aarch64).
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

fn rule(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> anyhow::Result<SeccompRule> {
    Ok(SeccompRule::new(vec![SeccompCondition::new(
        arg, len, op, value,
    )?])?)
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> anyhow::Result<BpfProgram> {
    let arch = std::env::consts::ARCH
        .try_into()
        .context("seccomp: unsupported architecture")?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )?;
    Ok(filter.try_into()?)
}

/// The refusals (EPERM).
pub fn filter() -> anyhow::Result<BpfProgram> {
    use SeccompCmpArgLen::{Dword, Qword};
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(
        libc::SYS_socket,
        vec![rule(0, Dword, SeccompCmpOp::Eq, AF_UNIX)?],
    );
    for unconditional in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        // Another process's descriptors (egress-run's own bridge end among them).
        libc::SYS_pidfd_getfd,
    ] {
        rules.insert(unconditional, Vec::new());
    }
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(1, Dword, SeccompCmpOp::Eq, TIOCSTI)?,
            rule(1, Dword, SeccompCmpOp::Eq, TIOCLINUX)?,
        ],
    );
    let new_user = || {
        rule(
            0,
            Qword,
            SeccompCmpOp::MaskedEq(CLONE_NEWUSER),
            CLONE_NEWUSER,
        )
    };
    rules.insert(libc::SYS_unshare, vec![new_user()?]);
    rules.insert(libc::SYS_clone, vec![new_user()?]);
    compile(rules, libc::EPERM)
}

/// clone3 passes its flags in memory, out of a filter's reach: it answers ENOSYS, so libc and
/// runtimes fall back to clone, which `filter` checks.
pub fn clone3_filter() -> anyhow::Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(libc::SYS_clone3, Vec::new());
    compile(rules, libc::ENOSYS)
}

/// x32 system calls arrive with the x86_64 audit arch and bit 30 set in their number, so a
/// filter keyed by x86_64 numbers would not see `socket` called the x32 way. This one refuses
/// every x32 call (nothing in a sandbox needs the x32 ABI). Hand-assembled because the filter
/// compiler keys on exact numbers only.
#[cfg(target_arch = "x86_64")]
pub fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 4),                           // seccomp_data.arch
        op(JEQ_K, 0, 3, AUDIT_ARCH_X86_64), // other arches: allow (the main filter kills them)
        op(LD_W_ABS, 0, 0, 0),              // seccomp_data.nr
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),   // x32 number?
        op(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32), // refuse
        op(RET_K, 0, 0, RET_ALLOW),
    ]
}

/// Sets `no_new_privs` and installs the filters on the calling thread; children inherit them.
pub fn apply() -> anyhow::Result<()> {
    rustix::thread::set_no_new_privs(true).context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    #[cfg(target_arch = "x86_64")]
    seccompiler::apply_filter(&x32_guard()).context("installing the x32 guard")?;
    seccompiler::apply_filter(&filter()?).context("installing the seccomp filter")?;
    seccompiler::apply_filter(&clone3_filter()?).context("installing the clone3 filter")?;
    Ok(())
}
