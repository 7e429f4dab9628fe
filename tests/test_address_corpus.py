from pipelines import paths
from pipelines.lib import address_corpus, data_version

XML = b"""<AddressCollection>
  <AddressString><AddressNumber>9265</AddressNumber> <StreetName>Huer</StreetName> <StreetName>Huero</StreetName> <StreetNamePostType>Road,</StreetNamePostType> <PlaceName>Creston,</PlaceName> <ZipCode>93432</ZipCode></AddressString>
  <AddressString><AddressNumber>3600</AddressNumber> <StreetName>5th</StreetName></AddressString>
  <AddressString></AddressString>
</AddressCollection>"""  # noqa: E501 (one address per line, as in the corpus)


def test_each_address_becomes_one_row_with_its_fields():
    rows = list(address_corpus.parse_addresses(XML))
    assert len(rows) == 2  # an empty <AddressString> is skipped
    first = rows[0]
    assert first["id"] == "usaddress-00000"
    assert first["address"] == "9265 Huer Huero Road, Creston, 93432"
    # Repeated tags join in reading order; separators stay in the address only.
    assert first["fields"] == {
        "AddressNumber": "9265",
        "StreetName": "Huer Huero",
        "StreetNamePostType": "Road",
        "PlaceName": "Creston",
        "ZipCode": "93432",
    }
    assert list(first["fields"]) == [
        "AddressNumber",
        "StreetName",
        "StreetNamePostType",
        "PlaceName",
        "ZipCode",
    ]


def test_written_file_is_byte_for_byte_reproducible(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert address_corpus.write_jsonl(address_corpus.parse_addresses(XML), a) == 2
    address_corpus.write_jsonl(address_corpus.parse_addresses(XML), b)
    assert a.read_bytes() == b.read_bytes()


def test_imported_corpus_matches_the_committed_data_version():
    """The set-up import (make data) left data/ at exactly the md5 in data.dvc."""
    corpus = paths.DATA_DIR / "address" / "addresses.jsonl"
    assert sum(1 for _ in corpus.open()) == 1513
    assert data_version.workspace_matches_dvc()
    assert len(data_version.recorded_md5()) == 32
