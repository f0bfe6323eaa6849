"""One run per output folder (architectures.run_lock): held, refused naming the holder, taken over when stale."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from architectures.run_lock import LOCK_NAME, RunLock, RunLockedError

HOLD = "import sys, time; from architectures.run_lock import RunLock; lock = RunLock(sys.argv[1]).acquire(); " \
       "print('held', flush=True); time.sleep(600)"


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path):
    with RunLock(tmp_path) as first:
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] and holder["started"]
        with pytest.raises(RunLockedError, match=f"in use by another run \\(pid {os.getpid()} on .*, started "):
            RunLock(tmp_path).acquire()
    assert first._handle is None and (tmp_path / LOCK_NAME).read_text() == ""  # released: emptied, not deleted
    messages = []
    with RunLock(tmp_path, log=messages.append):
        pass
    assert messages == []  # a released lock is not a stale one


def test_the_lock_of_a_killed_process_is_taken_over_with_a_message(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} "):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    time.sleep(0.1)
    (tmp_path / ".result.npz.x1y2.tmp").write_bytes(b"half")  # what an atomic write killed midway leaves
    (tmp_path / "result.npz").write_bytes(b"kept")
    messages = []
    with RunLock(tmp_path, log=messages.append):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME, "result.npz"]
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(messages) == 1 and f"pid {holder.pid}" in messages[0] and "did not finish" in messages[0]
