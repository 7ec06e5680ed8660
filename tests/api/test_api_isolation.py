"""progeny_api must work with nothing but requests: no numpy, OpenCV, MediaPipe, Pillow, or the gate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

HEAVY = ("numpy", "cv2", "mediapipe", "PIL", "preflight")


def run(code: str, repo_root: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": repo_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=50
    )


def test_import_pulls_in_no_vision_stack(repo_root: str) -> None:
    proc = run(
        f"""
        import sys
        import progeny_api, progeny_api.sandbox
        loaded = sorted(set({HEAVY!r}) & set(sys.modules))
        assert not loaded, loaded
        print("ok")
        """,
        repo_root,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_full_round_trip_pulls_in_no_vision_stack(repo_root: str) -> None:
    proc = run(
        f"""
        import sys
        from progeny_api import ProgenyClient
        from progeny_api.sandbox import Sandbox
        with Sandbox(lifecycle=("SUCCESS",)) as sb:
            with ProgenyClient(sb.username, sb.password, base_url=sb.base_url) as client:
                image = b"\\xff\\xd8\\xff\\xe0" + b"\\x00" * 64
                result = client.face_liveness(image)
                assert result.error_codes == {{"FAILED_TO_READ_IMAGE"}}, result
        loaded = sorted(set({HEAVY!r}) & set(sys.modules))
        assert not loaded, loaded
        print("ok")
        """,
        repo_root,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
