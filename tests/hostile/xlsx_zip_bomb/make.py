"""Inputs of this case, written by code (binary or large)."""

import zipfile


def make(data):
    with zipfile.ZipFile(data / "opportunities.xlsx", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/worksheets/sheet1.xml", "<c><v>0</v></c>" * 2_000_000)
