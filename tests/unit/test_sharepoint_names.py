"""The SharePoint name rule: every segment the destination sends must be one SharePoint Online accepts
(Microsoft's "Restrictions and limitations in OneDrive and SharePoint"), the same way every time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filerelay.destinations.sharepoint import clean_name
from tests.support.sharepoint_emulator import refused_name


@pytest.mark.parametrize(
    ("name", "folder", "expected"),
    [
        ("invoice.pdf", False, "invoice.pdf"),
        ('a*b:c<d>e?f"g|h.pdf', False, "a_b_c_d_e_f_g_h.pdf"),
        ("a\\b.pdf", False, "a_b.pdf"),
        ("Rechnung #5 100%.pdf", False, "Rechnung #5 100%.pdf"),
        ("Rechnung #5 100%", True, "Rechnung _5 100_"),
        ("  spaced. ", False, "spaced"),
        ("...", False, "_"),
        ("", False, "_"),
        ("tab\there.pdf", False, "tab_here.pdf"),
    ],
)
def test_refused_characters_and_blanks(name: str, folder: bool, expected: str) -> None:
    assert clean_name(name, folder=folder) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CON", "CON_"),
        ("con", "con_"),
        ("PRN", "PRN_"),
        ("AUX", "AUX_"),
        ("NUL", "NUL_"),
        ("COM0", "COM0_"),
        ("com9", "com9_"),
        ("LPT0", "LPT0_"),
        ("LPT9", "LPT9_"),
        ("desktop.ini", "desktop_.ini"),
        ("Desktop.INI", "Desktop_.INI"),
        (".lock", "lock"),
        ("CON ", "CON_"),  # reserved once the trailing blank is gone
        ("CONSOLE.pdf", "CONSOLE.pdf"),  # only the whole name is reserved
        ("COM10", "COM10"),
        ("~$x.pdf", "_$x.pdf"),
        ("a~$b.pdf", "a~$b.pdf"),
        ("_vti_cnf", "_vti-cnf"),
        ("my_VTI_file.pdf", "my_VTI-file.pdf"),
        ("x_vti_vti_y", "x_vti-vti_y"),
    ],
)
def test_reserved_names_are_changed(name: str, expected: str) -> None:
    assert clean_name(name) == expected
    assert clean_name(name, folder=True) == expected


def test_forms_is_only_changed_as_a_folder_directly_in_the_library() -> None:
    assert clean_name("Forms", folder=True, library_root=True) == "Forms_"
    assert clean_name("forms", folder=True, library_root=False) == "forms"
    assert clean_name("forms", folder=False, library_root=True) == "forms"
    assert clean_name("forms", folder=True) == "forms"  # deeper than the library root unless told


@pytest.mark.parametrize(
    "name",
    [
        "CON",
        "desktop.ini",
        ".lock",
        "~$x.pdf",
        "_vti_x",
        " lead",
        "trail ",
        'a"b',
        "a*b",
        "a:b",
        "a<b",
        "a>b",
        "a?b",
        "a/b",
        "a\\b",
        "a|b",
        "LPT1",
        "COM0",
    ],
)
def test_every_refused_name_comes_out_accepted(name: str) -> None:
    # The emulator holds SharePoint's rules; the cleaned name must pass them, in files and folders.
    assert refused_name(name)
    assert not refused_name(clean_name(name))
    assert not refused_name(clean_name(name, folder=True, library_root=True), library_root_folder=True)


def test_cleaning_is_stable() -> None:
    # A redelivery must land on the same name, so cleaning a cleaned name changes nothing.
    for name in ("CON", "~$x.pdf", "_vti_", "a:b", " desktop.ini ", "Forms"):
        once = clean_name(name, folder=True, library_root=True)
        assert clean_name(once, folder=True, library_root=True) == once


@settings(max_examples=300, database=None, deadline=None)
@given(st.text(max_size=40), st.booleans(), st.booleans())
def test_cleaning_a_clean_name_changes_nothing(segment: str, folder: bool, library_root: bool) -> None:
    """A delivery records where it landed and reads back from there: that path must clean to itself."""
    once = clean_name(segment, folder=folder, library_root=library_root)
    assert clean_name(once, folder=folder, library_root=library_root) == once
