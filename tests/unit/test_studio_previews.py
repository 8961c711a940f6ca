"""The studio's readable previews (app/static/js/studio/timer-preview.js) with the page's English texts, in Node."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from app.web.studio import studio_messages

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="needs Node.js (make setup installs the npm packages with it)")
def test_timer_and_duration_previews_read_as_the_page_says_them(app, tmp_path: Path):
    with app.test_request_context("/studio/"):
        messages = studio_messages()["preview"]
    texts = tmp_path / "preview.json"
    texts.write_text(json.dumps(messages), encoding="utf-8")
    result = subprocess.run([NODE, "--test", str(ROOT / "tests/unit/js/timer_preview.test.mjs")], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "QUALIFLOW_PREVIEW_MESSAGES": str(texts)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
