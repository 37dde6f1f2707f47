"""Files named by paths with spaces reach the tools by a link whose name has none."""

from __future__ import annotations

from pathlib import Path

from smolcrew.tools.spaced_names import without_spaces


def test_a_path_with_spaces_becomes_a_link_to_the_same_file(tmp_path: Path) -> None:
    scan = tmp_path / "inbox" / "Scan 2024-05-01.png"
    scan.parent.mkdir()
    scan.write_bytes(b"png")
    (tmp_path / "inbox" / "2024-05-01.png").write_bytes(b"another file")  # the shorter name is no match
    links = tmp_path / "links"
    asked = f"What's on this receipt, and did they charge me for bread? {scan}"
    rewritten = without_spaces(asked, [tmp_path], links)
    link = Path(rewritten.removeprefix("What's on this receipt, and did they charge me for bread? "))
    assert link.name == "Scan_2024-05-01.png" and " " not in str(link) and link.resolve() == scan.resolve()
    assert without_spaces(asked, [tmp_path], links) == rewritten  # the same link on every turn
    by_name = without_spaces("read 'Scan 2024-05-01.png' please", [tmp_path / "inbox"], links)
    assert by_name == f"read '{link}' please"  # a relative name, found under a root


def test_names_that_are_no_file_here_or_lie_outside_the_roots_stay_as_they_are(tmp_path: Path) -> None:
    outside = tmp_path / "private" / "My Notes.txt"
    outside.parent.mkdir()
    outside.write_text("secret")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for asked in (f"summarize {outside}", "summarize My Report.pdf", "no file here", "what is 2 + 2?"):
        assert without_spaces(asked, [allowed], tmp_path / "links") == asked
    assert not (tmp_path / "links").exists()
