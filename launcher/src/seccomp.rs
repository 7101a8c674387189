//! The seccomp filter a sandboxed command runs under (after `no_new_privs`). It refuses, with
//! EPERM, what would open a way around the proxy or into other processes: new Unix-domain
//! sockets (a host daemon's socket could carry traffic out; `socketpair` stays allowed),
//! io_uring (syscalls the filter cannot see), ptrace and process_vm_*, terminal injection
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

/// Sets `no_new_privs` and installs both filters on the calling thread; children inherit them.
/// Not covered here: x32 syscall numbers (x86_64 with bit 30 set) — see the README.
pub fn apply() -> anyhow::Result<()> {
    rustix::thread::set_no_new_privs(true).context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    seccompiler::apply_filter(&filter()?).context("installing the seccomp filter")?;
    seccompiler::apply_filter(&clone3_filter()?).context("installing the clone3 filter")?;
    Ok(())
}
