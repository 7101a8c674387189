//! The seccomp filter a sandboxed command runs under (after `no_new_privs`). It refuses, with
//! EPERM, what would open a way around the proxy or into other processes: sockets of any family
//! but IPv4, IPv6 and netlink (a host daemon's Unix socket, or AF_VSOCK to a VM's host, could
//! carry traffic out), datagram socket pairs (they can be re-pointed at a host socket path;
//! stream pairs stay allowed), io_uring (syscalls the filter cannot see), ptrace, process_vm_*
//! and pidfd_getfd, terminal injection (TIOCSTI, TIOCLINUX), new user namespaces, and the
//! kernel's keyrings (keyctl, add_key, request_key). clone3 answers ENOSYS, so libc falls back
//! to clone, whose flags the filter can inspect.

use std::collections::BTreeMap;

use anyhow::Context;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// `socket`/`socketpair`'s type argument carries flags above the type proper.
const SOCK_TYPE_MASK: u64 = 0xf;
const SOCK_DGRAM: u64 = libc::SOCK_DGRAM as u64;
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
    // An allow list of address families, not a deny list: Unix sockets could reach a host
    // daemon, and families the network namespace does not isolate (AF_VSOCK in a VM reaches
    // the hypervisor host; others may) would bypass the proxy. IP goes to the sandbox's own
    // loopback only; netlink is what `ip` and getifaddrs speak to it.
    let other_family = SeccompRule::new(
        [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK]
            .into_iter()
            .map(|family| SeccompCondition::new(0, Dword, SeccompCmpOp::Ne, family as u64))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    rules.insert(libc::SYS_socket, vec![other_family]);
    // A datagram socket pair can be re-pointed with connect()/sendto() at any datagram socket
    // path it can see; stream and seqpacket pairs cannot, and are all that runtimes use.
    rules.insert(
        libc::SYS_socketpair,
        vec![rule(
            1,
            Dword,
            SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK),
            SOCK_DGRAM,
        )?],
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
        // The caller's session keyring is inherited through any namespace, with the keys in it
        // (tokens, Kerberos tickets); request_key can also make the host run a helper (a
        // dns_resolver key is a DNS lookup outside the sandbox). No tool in a sandbox needs
        // them: container runtimes refuse them alike.
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
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

/// Every filter, in the order they are installed. bubblewrap installs them (`--add-seccomp-fd`,
/// after setting `no_new_privs`) just before it starts egress-run's inner half, so the inner half
/// is confined from its first instruction and the command inherits the same filters.
pub fn programs() -> anyhow::Result<Vec<BpfProgram>> {
    let main = vec![filter()?, clone3_filter()?];
    #[cfg(target_arch = "x86_64")]
    let main = [vec![x32_guard()], main].concat();
    Ok(main)
}

/// A program as the kernel's array of `struct sock_filter` (u16 code, u8 jt, u8 jf, u32 k, in
/// native byte order): what bubblewrap reads from a seccomp descriptor and hands to the kernel.
pub fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_laid_out_as_the_kernels_sock_filter_array() {
        let program = vec![
            seccompiler::sock_filter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 4,
            },
            seccompiler::sock_filter {
                code: 0x15,
                jt: 1,
                jf: 2,
                k: 0xc000_003e,
            },
        ];
        let mut expected = Vec::new();
        expected.extend_from_slice(&0x20u16.to_ne_bytes());
        expected.extend_from_slice(&[0, 0]);
        expected.extend_from_slice(&4u32.to_ne_bytes());
        expected.extend_from_slice(&0x15u16.to_ne_bytes());
        expected.extend_from_slice(&[1, 2]);
        expected.extend_from_slice(&0xc000_003eu32.to_ne_bytes());
        assert_eq!(to_bytes(&program), expected);
    }

    #[test]
    fn every_filter_compiles_and_the_x32_guard_comes_first() {
        let programs = programs().unwrap();
        assert_eq!(
            programs.len(),
            if cfg!(target_arch = "x86_64") { 3 } else { 2 }
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(programs[0], x32_guard());
        assert!(programs.iter().all(|p| !p.is_empty() && p.len() < 4096));
    }
}
