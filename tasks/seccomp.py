"""A seccomp filter for the sandbox, written as classic BPF by hand: no libseccomp needed, bwrap loads it (--seccomp).

It denies (EPERM) the system calls model code never needs and an attacker would: debugging other processes,
mounting, kernel modules and kexec, the kernel keyring, bpf, perf events, userfaultfd, new namespaces (unshare,
setns, and clone with a CLONE_NEW* flag), and the like; clone3 answers ENOSYS, so the C library falls back to clone,
whose flags the filter can read. Any other architecture's calls (32-bit ABIs on x86-64) kill the process: a filter
that checks numbers must not be walked around through another table of numbers. x86-64 only: elsewhere the sandbox
runs without the filter and says so.
"""
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
EPERM, ENOSYS = 1, 38

# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
DENIED = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "ustat": 136, "sysfs": 139,
    "pivot_root": 155, "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "iopl": 172, "ioperm": 173, "create_module": 174, "init_module": 175, "delete_module": 176,
    "get_kernel_syms": 177, "query_module": 178, "quotactl": 179, "nfsservctl": 180, "lookup_dcookie": 212,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "move_pages": 279,
    "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "bpf": 321, "userfaultfd": 323, "kexec_file_load": 320, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442,
}
CLONE, CLONE3 = 56, 435
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (and NEWTIME, which shares CSIGNAL's bits on clone)
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_ERRNO = 0x00050000
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # offsets in struct seccomp_data (little-endian: an argument's low half first)


def supported() -> bool:
    return platform.machine() in ("x86_64", "AMD64")


def program() -> bytes:
    """The filter as struct sock_filter[] bytes, ready for bwrap --seccomp."""
    code: list[tuple] = [
        (_LD_W_ABS, None, None, _ARCH),
        (_JEQ, 0, "kill", AUDIT_ARCH_X86_64),
        (_LD_W_ABS, None, None, _NR),
        (_JGE, "deny", 0, X32_SYSCALL_BIT),
        *[(_JEQ, "deny", 0, number) for number in sorted(DENIED.values())],
        (_JEQ, "nosys", 0, CLONE3),
        (_JEQ, 0, "allow", CLONE),
        (_LD_W_ABS, None, None, _ARG0_LOW),
        (_JSET, "deny", "allow", CLONE_NAMESPACES),
    ]
    returns = {"allow": _ALLOW, "deny": _ERRNO | EPERM, "nosys": _ERRNO | ENOSYS, "kill": _KILL_PROCESS}
    labels = {name: len(code) + index for index, name in enumerate(returns)}
    code += [(_RET, None, None, value) for value in returns.values()]
    out = b""
    for index, (op, true, false, k) in enumerate(code):
        jump = [labels[target] - index - 1 if isinstance(target, str) else (target or 0) for target in (true, false)]
        out += struct.pack("=HBBI", op, *jump, k)
    return out
