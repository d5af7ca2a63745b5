"""The sandbox without bubblewrap: weaker isolation is reported, and the uid and limits still hold."""
import asyncio
import os

from coursepack.grading.sandbox import Sandbox, SandboxKernelManager, claim_uid, isolation, wrap


def test_weaker_isolation_is_reported_and_still_limits():
    weaker = isolation(False)
    assert weaker.weaker and weaker.detail.startswith("WEAKER ISOLATION")
    command = wrap(["python", "-m", "ipykernel_launcher"], "/tmp/job", Sandbox(use_bwrap=False), 61000)
    assert command[:2] == ["env", "-i"] and "prlimit" in command
    assert not any("SECRET" in part or "COURSEPACK_DB" in part for part in command)
    assert ("--reuid=61000" in command) == (weaker.level == "unprivileged")


def test_kernel_without_bubblewrap_is_limited_as_reported(tmp_path, monkeypatch):
    secret = tmp_path / "gradebook.db"
    secret.write_text("hidden")
    os.chmod(tmp_path, 0o700)
    monkeypatch.setenv("COURSEPACK_DB", "postgresql://grader:SECRET@db/gradebook")
    uid = claim_uid(Sandbox())

    async def run():
        manager = SandboxKernelManager(kernel_name="python3", sandbox=Sandbox(use_bwrap=False, uid=uid))
        await manager.start_kernel(cwd=str(tmp_path))
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            seen = []
            code = ("import os, resource\n"
                    f"try:\n    open({str(secret)!r}).read()\n    print('LEAK')\n"
                    "except OSError:\n    print('blocked')\n"
                    "print(os.getuid(), resource.getrlimit(resource.RLIMIT_AS)[0], 'COURSEPACK_DB' in os.environ)")
            await client.execute_interactive(code, timeout=60, output_hook=lambda m: seen.append(
                m["content"].get("text", "")))
            return "".join(seen)
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)
            await manager.cleanup_resources()

    out = asyncio.run(run())
    level = isolation(False).level
    seen_uid, memory, leaked_env = out.split()[-3:]
    assert int(memory) == Sandbox().memory_limit and leaked_env == "False", out
    if level == "unprivileged":  # another uid: the course's private files are out of reach
        assert seen_uid == str(uid) and "blocked" in out and "LEAK" not in out, out
    else:  # limits only (this machine's Python lies under /root, which no other uid may enter)
        assert seen_uid == str(os.geteuid()), out
