"""The README's three-line Python example runs as written, on an image file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_segments_an_image_in_three_lines(tmp_path, monkeypatch):
    blocks = _python_blocks()
    assert blocks, "the README shows no Python example"
    example = blocks[0]
    code_lines = [line for line in example.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code_lines) == 3, code_lines
    yy, xx = np.mgrid[:128, :160]
    image = np.zeros((128, 160), np.float32)
    for cy, cx in ((40, 40), (80, 110), (30, 120)):
        image += 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 7.0**2))
    Image.fromarray(np.clip(image + 10, 0, 255).astype(np.uint8)).save(tmp_path / "my_image.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - the README's own example
    labels = namespace["labels"]
    assert labels.shape == (128, 160)
    assert labels.max() >= 1
    assert labels[40, 40] > 0 and labels[0, 0] == 0
