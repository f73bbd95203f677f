"""``load_kg``: what a ``kg:`` setting or ``--kg`` argument names, and the reader it goes to."""

import pytest

from kgpeft import KGFileNotFoundError
from kgpeft.datasets import load_kg

NT = (
    "<http://ex.org/Paris> <http://ex.org/capitalOf> <http://ex.org/France> .\n"
    '<http://ex.org/Paris> <http://www.w3.org/2000/01/rdf-schema#label> "Paris"@en .\n'
)


@pytest.mark.parametrize("name", ["kg.nt", "KG.NT"])
def test_ntriples_file_goes_to_the_ntriples_reader(tmp_path, name):
    path = tmp_path / name
    path.write_text(NT)
    kg = load_kg(str(path))
    assert kg.info["reader"] == "read_ntriples"
    assert kg.entity_keys == ["http://ex.org/Paris", "http://ex.org/France"]
    assert kg.labels == ["Paris", "France"]


def test_triples_file_goes_to_the_triples_reader(tmp_path):
    path = tmp_path / "kg.csv"
    path.write_text('"New York, NY",located_in,USA\n')
    kg = load_kg(str(path))
    assert kg.info["reader"] == "read_triples" and kg.entity_keys == ["New York, NY", "USA"]


@pytest.mark.parametrize(
    ("name", "hint"),
    [("nation", "; did you mean 'nations'?"), ("WordNett", "; did you mean 'wordnet'?"), ("zzz.tsv", ".")],
)
def test_unknown_name_lists_the_datasets_and_the_closest(tmp_path, monkeypatch, name, hint):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KGFileNotFoundError) as err:
        load_kg(name)
    assert str(err.value) == (
        f"KG {name!r} is neither a file nor a dataset (datasets: nations, kinships, umls, wordnet){hint}"
    )
