"""Reports and documents are written whole or not at all."""

from __future__ import annotations

import pytest

from amhs_assets.documents import write_text


def test_a_write_replaces_the_file_whole_and_a_failed_one_leaves_the_old_file(tmp_path):
    path = tmp_path / "reports" / "evaluation.html"
    write_text(path, "<html>old</html>")
    assert path.read_text() == "<html>old</html>"
    with pytest.raises(UnicodeEncodeError):
        write_text(path, "<html>new \udc80 half</html>")  # fails while being written
    assert path.read_text() == "<html>old</html>"  # the old page, whole
    assert [p.name for p in path.parent.iterdir()] == ["evaluation.html"]  # no temp file left
    write_text(path, "<html>new</html>")
    assert path.read_text() == "<html>new</html>"
