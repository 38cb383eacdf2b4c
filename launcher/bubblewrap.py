"""bubblewrap, which the worker's job sandbox is built with: found, or installed where this machine allows it.

The worker refuses to run uploaded models without a sandbox (tasks.isolation). `launcher run` and `launcher test`
install Debian's `bubblewrap` package themselves when they run as root with apt; elsewhere they say what to do.
Only the test command goes on without it, with jobs unsandboxed and the red-team tests that need it skipped.
"""
import os
import shutil
import subprocess

ALLOW_UNSANDBOXED = "SLIMFORGE_ALLOW_UNSANDBOXED"
HOW = "install it (Debian/Ubuntu: apt-get install bubblewrap)"


def works() -> bool:
    """bwrap is here and can build a sandbox on this machine (a container may forbid namespaces)."""
    if shutil.which("bwrap") is None:
        return False
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc",
                            "--dev", "/dev", "/usr/bin/true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def ensure(say) -> bool:
    """True when bubblewrap works, after installing it where that is possible."""
    if works():
        return True
    if shutil.which("bwrap") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing bubblewrap (apt-get install bubblewrap): the worker runs uploaded models in its sandbox")
        subprocess.run(["apt-get", "install", "-y", "-q", "bubblewrap"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if works():
            return True
    return False


def for_run(env: dict[str, str], say) -> None:
    if not ensure(say) and env.get(ALLOW_UNSANDBOXED) != "1":
        say(f"WARNING: bubblewrap is missing or cannot sandbox here, so the worker will refuse uploaded models; "
            f"{HOW}, or set {ALLOW_UNSANDBOXED}=1 to run them without a sandbox")


def for_tests(env: dict[str, str], say) -> dict[str, str]:
    if ensure(say):
        return env
    say(f"bubblewrap is missing or cannot sandbox here: the tests run jobs without a sandbox and skip the red-team "
        f"tests that need one; {HOW}")
    return {**env, ALLOW_UNSANDBOXED: "1"}
