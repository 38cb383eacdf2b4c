"""The disk filling up while a job writes its artifacts, for real: the worker's temporary folder (TMPDIR, where each
job's folder lives) is a small tmpfs, nearly full. The job fails saying there is no space left, its temporary files
are gone, and once there is room again the next job on the same worker succeeds."""
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.faults.jobs import finished, model_and_digits
from tests.faults.stack import own_stack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]
ROOM_FOR_THE_MODEL_COPY = 48 * 1024  # beyond the model's own size: the job starts, its outputs do not fit


@pytest.fixture
def small_disk():
    folder = Path(tempfile.mkdtemp(prefix="slimforge-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=1777", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_fails_the_job_cleanly_and_the_next_one_works(small_disk, tmp_path):
    stack = own_stack(tmp_path / "stack", env={"TMPDIR": str(small_disk)})
    try:
        stack.start()
        api = stack.user("alice")
        model, _ = model_and_digits(api, stack.url, tmp_path)
        filler = _fill(small_disk, model["size_bytes"] + ROOM_FOR_THE_MODEL_COPY)

        def quantize() -> dict:
            response = api.post(f"{stack.url}/api/experiments/", timeout=30, json={
                "model": model["id"], "recipe": "quantize", "config": {"variant": "dynamic_int8"}})
            assert response.status_code == 201, response.text
            return finished(api, f"{stack.url}/api/experiments/{response.json()['id']}/", timeout=180)

        failed = quantize()
        assert failed["status"] == "failed" and "No space left on device" in failed["error"], failed
        assert failed["artifacts"] == []
        # The job's temporary folders are gone (multiprocessing's own pymp-* folder of the worker's pool stays).
        assert [p.name for p in small_disk.iterdir() if not p.name.startswith("pymp-")] == ["filler"]

        filler.unlink()
        done = quantize()  # the same worker, with room again
        assert done["status"] == "succeeded", done["error"]
        assert done["artifacts"]
    finally:
        stack.stop()
