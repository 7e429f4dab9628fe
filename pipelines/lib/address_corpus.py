"""The embedded default data: hand-labelled US addresses from the usaddress sdist.

`training/labeled.xml` in usaddress 0.5.16 (MIT) holds 1,513 addresses whose
tokens are tagged with 29 field names. Each becomes one raw row:
{"id", "address", "fields"} where fields maps tag -> text in reading order.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from pipelines.lib import pypi

PACKAGE = "usaddress==0.5.16"
MEMBER = "usaddress-0.5.16/training/labeled.xml"
LICENSE_NOTE = "usaddress 0.5.16 training/labeled.xml, MIT licence, (c) DataMade"


def read_labeled_xml(sdist: Path) -> bytes:
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise FileNotFoundError(f"{sdist}: {MEMBER} is missing")
        return member.read()


def parse_addresses(xml_bytes: bytes) -> Iterator[dict]:
    """Yield one raw row per <AddressString>, in file order."""
    root = ET.fromstring(xml_bytes)
    for index, element in enumerate(root.iter("AddressString")):
        tokens: list[str] = []
        fields: dict[str, str] = {}
        for token in element:
            text = (token.text or "").strip()
            if not text:
                continue
            tokens.append(text)
            # Separators belong to the address string, not to the field's value.
            value = text.rstrip(",;")
            if value:
                fields[token.tag] = f"{fields[token.tag]} {value}" if token.tag in fields else value
        if tokens and fields:
            yield {"id": f"usaddress-{index:05d}", "address": " ".join(tokens), "fields": fields}


def write_jsonl(rows: Iterator[dict], path: Path) -> int:
    """Write rows as JSON lines, byte-for-byte reproducible (same rows, same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def import_address_corpus(out_file: Path) -> int:
    """Download, convert and write the corpus; returns the number of rows."""
    with tempfile.TemporaryDirectory() as tmp:
        xml_bytes = read_labeled_xml(pypi.download(PACKAGE, Path(tmp), sdist=True))
    count = write_jsonl(parse_addresses(xml_bytes), out_file)
    (out_file.parent / "SOURCE.txt").write_text(f"{LICENSE_NOTE}\n{count} rows\n")
    return count
