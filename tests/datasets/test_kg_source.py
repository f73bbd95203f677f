"""``kg:`` as a mapping (:class:`KGSource`): triples, labels, formats, headers, compressed files, and the
messages a user gets for what they try first."""

import bz2
import gzip
import lzma

import pytest

from kgpeft import KGFileNotFoundError, KGFormatError
from kgpeft.datasets import KGSource, KGSourceError, load_kg, synthetic
from kgpeft.graph.readers import formats, read_entity_labels
from kgpeft.pipeline import JobConfig
from kgpeft.pipeline.config import JobConfigError

TRIPLES = "GO:1\tis_a\tGO:2\nGO:2\tpart_of\tGO:3\n"
LABELS = "GO:1\tmitochondrion\tmito|chondriosome\tan organelle\nGO:2\tcytoplasm\nGO:3\tcell\n"
NAMES = ["mitochondrion", "cytoplasm", "cell"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "triples.tsv").write_text(TRIPLES)
    (tmp_path / "labels.tsv").write_text(LABELS)
    return tmp_path


def test_a_mapping_attaches_labels_to_a_triples_file(files):
    kg = load_kg({"triples": str(files / "triples.tsv"), "labels": str(files / "labels.tsv"), "name": "go"})
    assert kg.entity_keys == ["GO:1", "GO:2", "GO:3"] and list(kg.labels) == NAMES
    assert kg.aliases[0] == ("mito", "chondriosome") and kg.descriptions[0] == "an organelle"
    assert kg.info["name"] == "go"


def test_the_plain_string_still_loads_the_triples_alone(files):
    kg = load_kg(str(files / "triples.tsv"))
    assert list(kg.labels) == ["GO:1", "GO:2", "GO:3"] and kg.info["reader"] == "read_triples"


def test_a_yaml_mapping_string_is_a_mapping(files):
    kg = load_kg(f"{{triples: {files / 'triples.tsv'}, labels: {files / 'labels.tsv'}}}")
    assert list(kg.labels) == NAMES


def test_job_config_takes_kg_as_a_mapping(files):
    values = {"model": "m", "kg": {"triples": "t.tsv", "labels": "l.tsv"}, "variants": [{"adapter": "lora"}]}
    config = JobConfig.from_dict(values)
    assert config.kg == KGSource(triples="t.tsv", labels="l.tsv")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kg": {"triples": "t.tsv", "label": "l.tsv"}}, "unknown key 'label' in kg; did you mean 'labels'?"),
        ({"kg": {"labels": "l.tsv"}}, "the key 'triples' is required in kg."),
        ({"kg": {"triples": ["a", "b"]}}, "kg: `triples` should be a file or folder, or a list of three files"),
        ({"kg": {"triples": "t", "format": "tutle"}}, "`format` should be one of ('auto', 'tsv', 'csv'"),
        ({"kg": {"triples": "t", "format": "tutle"}}, "did you mean 'turtle'?"),
        ({"kg": {"triples": "t", "columns": {"head": "s", "tail": "o"}}}, "`columns` should map exactly head"),
        ({"kg": {"triples": "t.nt", "format": "ntriples", "labels": "l"}}, "`labels` is for TSV/CSV triples files"),
        ({"kg": "t.tsv", "labels": "l.tsv"}, "`labels` is not a job config key: it describes the KG's files"),
        ({"kg": "t.tsv", "triples": "t.tsv"}, "write it under `kg:`, as in `kg: {triples: FILE, labels: FILE}`"),
    ],
)
def test_job_config_names_the_kg_key_that_is_wrong(values, message):
    with pytest.raises(JobConfigError) as err:
        JobConfig.from_dict({"model": "m", **values})
    assert message in str(err.value)
    assert "num_labels" not in str(err.value) and "should be str, got dict" not in str(err.value)


def test_a_folder_of_triples_and_labels_says_how_to_name_them(files):
    with pytest.raises(KGFileNotFoundError) as err:
        load_kg(str(files))
    message = str(err.value)
    assert "neither a saved KG folder (no kg.json) nor a PyKEEN split folder" in message
    assert "it holds labels.tsv, triples.tsv" in message and "`kg: {triples: FILE, labels: FILE}`" in message
    assert "train.txt" in message and "not found" not in message


def test_a_synthetic_folder_loads_its_entities_tsv(tmp_path):
    folder = synthetic(tmp_path / "syn", num_entities=30, num_relations=3, num_triples=80, seed=1)
    kg = load_kg(str(folder))
    assert not any(label.startswith("Q") and label[1:].isdigit() for label in kg.labels)  # was: Q30, Q392, ...
    assert sum(len(a) for a in kg.aliases) > 0
    expected = read_entity_labels(folder / "entities.tsv")
    assert [expected[k][:2] for k in kg.entity_keys] == list(zip(kg.labels, kg.aliases, strict=True))


def test_split_files_as_a_list(files):
    for split, text in [("train", TRIPLES), ("valid", "GO:1\tpart_of\tGO:3\n"), ("test", "GO:3\tis_a\tGO:4\n")]:
        (files / f"{split}.tsv").write_text(text)
    kg = load_kg(
        KGSource(
            triples=[str(files / f"{s}.tsv") for s in ("train", "valid", "test")], labels=str(files / "labels.tsv")
        )
    )
    assert {k: v.size(1) for k, v in kg.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    assert kg.num_triples == 2 and list(kg.labels) == [*NAMES, "GO:4"]


CSV = "subject,weight,predicate,object\nGO:1,0.5,is_a,GO:2\n\nGO:2,1,part_of,GO:3\n"


def test_csv_with_a_header_and_a_column_mapping(tmp_path):
    (tmp_path / "t.csv").write_text(CSV)
    columns = {"head": "subject", "relation": "predicate", "tail": "object"}
    kg = load_kg({"triples": str(tmp_path / "t.csv"), "columns": columns})
    assert kg.entity_keys == ["GO:1", "GO:2", "GO:3"] and kg.relation_keys == ["is_a", "part_of"]
    numbers = {"head": 0, "relation": 2, "tail": 3}
    by_number = load_kg({"triples": str(tmp_path / "t.csv"), "columns": numbers, "header": True})
    assert by_number.triples.tolist() == kg.triples.tolist()
    # `weight` is no known column name: without `header: true` the first row is a triple
    assert "subject" in load_kg({"triples": str(tmp_path / "t.csv"), "columns": numbers}).entity_keys


def test_a_header_row_of_column_names_is_skipped_by_default(tmp_path):
    (tmp_path / "t.tsv").write_text("head\trelation\ttail\n" + TRIPLES)
    (tmp_path / "l.tsv").write_text("id\tname\tsynonyms\tdefinition\n" + LABELS)
    kg = load_kg({"triples": str(tmp_path / "t.tsv"), "labels": str(tmp_path / "l.tsv")})
    assert kg.entity_keys == ["GO:1", "GO:2", "GO:3"] and list(kg.labels) == NAMES
    with_header = load_kg({"triples": str(tmp_path / "t.tsv"), "header": False})
    assert "head" in with_header.entity_keys  # header: false reads the first row as a triple


@pytest.mark.parametrize(
    ("content", "columns", "line", "message"),
    [
        ("s,p,o\na,r,b\n", {"head": "s", "relation": "p", "tail": "x"}, 1, "column 'x' (`columns.tail`) is not in"),
        ("s,p,o\na,r,b\nc,r\n", {"head": "s", "relation": "p", "tail": "o"}, 3, "expected 3 columns separated by ','"),
        ("s,p,o\na,,b\n", {"head": "s", "relation": "p", "tail": "o"}, 2, "the relation column ('p') is empty"),
        ("a,r,b\n", {"head": 0, "relation": 1, "tail": 5}, 1, "`columns` asks for column 6 of rows with 3 columns"),
    ],
)
def test_a_bad_headered_file_names_file_and_line(tmp_path, content, columns, line, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(KGFormatError) as err:
        load_kg({"triples": str(tmp_path / "t.csv"), "columns": columns})
    assert err.value.line == line and message in str(err.value) and str(tmp_path / "t.csv") in str(err.value)


@pytest.mark.parametrize(
    ("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)]
)
def test_compressed_files_are_read_as_they_stream(tmp_path, suffix, compress):
    (tmp_path / f"t.tsv{suffix}").write_bytes(compress(TRIPLES.encode()))
    (tmp_path / f"l.tsv{suffix}").write_bytes(compress(LABELS.encode()))
    nt = '<http://x/a> <http://x/r> <http://x/b> .\n<http://x/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
    (tmp_path / f"kg.nt{suffix}").write_bytes(compress(nt.encode()))
    kg = load_kg({"triples": str(tmp_path / f"t.tsv{suffix}"), "labels": str(tmp_path / f"l.tsv{suffix}")})
    assert list(kg.labels) == NAMES and kg.num_triples == 2
    rdf = load_kg(str(tmp_path / f"kg.nt{suffix}"))
    assert rdf.info["reader"] == "read_ntriples" and list(rdf.labels) == ["A", "b"]


def test_a_csv_gz_file_is_comma_separated(tmp_path):
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b'"New York, NY",located_in,USA\n'))
    assert load_kg(str(tmp_path / "t.csv.gz")).entity_keys == ["New York, NY", "USA"]


def test_a_truncated_compressed_file_names_file_and_line(tmp_path):
    data = gzip.compress(("a\tr\tb\n" * 5000).encode())
    (tmp_path / "t.tsv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(KGFormatError, match="compressed data is corrupt or truncated") as err:
        load_kg(str(tmp_path / "t.tsv.gz"))
    assert err.value.path == str(tmp_path / "t.tsv.gz") and err.value.line > 1


def test_a_format_without_a_reader_is_named_with_the_readers_there_are(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "READERS", {k: v for k, v in formats.READERS.items() if k != "xml"})
    (tmp_path / "kg.owl.gz").write_bytes(gzip.compress(b"<rdf:RDF/>"))
    with pytest.raises(KGFormatError) as err:
        load_kg(str(tmp_path / "kg.owl.gz"))
    assert "no reader for the format 'xml' (from its suffix '.owl')" in str(err.value)
    assert "formats with a reader: tsv, csv, ntriples, turtle, nquads, jsonld, obo" in str(err.value)


TURTLE = """@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix x: <http://x.org/> .
x:a x:r x:b .
x:a rdfs:label "alpha"@en ; skos:altLabel "first" .
x:b rdfs:label "beta" .
"""
OBO = """format-version: 1.2

[Term]
id: T:1
name: alpha
synonym: "first" EXACT []

[Term]
id: T:2
name: beta
is_a: T:1 ! alpha
"""


@pytest.mark.parametrize(("name", "text"), [("kg.ttl.gz", TURTLE), ("kg.obo", OBO)])
def test_rdf_and_obo_files_load_by_their_suffix_with_their_names(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    for source in (str(path), {"triples": str(path)}):
        kg = load_kg(source)
        assert sorted(kg.labels) == ["alpha", "beta"] and kg.num_triples == 1
        assert kg.aliases[kg.labels.index("alpha")] == ("first",)


def test_tabular_keys_are_refused_for_a_file_read_by_another_reader(tmp_path):
    (tmp_path / "kg.nt").write_text("<http://x/a> <http://x/r> <http://x/b> .\n")
    with pytest.raises(KGSourceError, match="`columns` is for TSV/CSV triples files"):
        load_kg({"triples": str(tmp_path / "kg.nt"), "columns": {"head": 0, "relation": 1, "tail": 2}})


def test_missing_files_are_named(files):
    with pytest.raises(KGFileNotFoundError, match=r"kg: labels: .*nope\.tsv is not a file"):
        load_kg({"triples": str(files / "triples.tsv"), "labels": str(files / "nope.tsv")})
    with pytest.raises(KGFileNotFoundError, match=r"kg: triples: .*nope\.tsv is neither a file nor a folder"):
        load_kg({"triples": str(files / "nope.tsv")})


def test_options_go_to_the_reader_and_unknown_ones_are_named(tmp_path):
    nt = (
        '<http://x/a> <http://x/r> <http://x/b> .\n<http://x/a> <http://www.w3.org/2000/01/rdf-schema#label> "A"@fr .\n'
    )
    (tmp_path / "kg.nt").write_text(nt)
    assert list(load_kg({"triples": str(tmp_path / "kg.nt"), "options": {"language": "fr"}}).labels) == ["A", "b"]
    assert list(load_kg(str(tmp_path / "kg.nt")).labels) == ["a", "b"]  # English names only, by default
    with pytest.raises(KGSourceError, match=r"`options.lang` is not a setting of the 'ntriples' reader; it takes: la"):
        load_kg({"triples": str(tmp_path / "kg.nt"), "options": {"lang": "fr"}})
    (tmp_path / "t.tsv").write_text(TRIPLES)
    with pytest.raises(KGSourceError, match=r"`options.delimiter` is not a setting of the 'tsv' reader; it takes: no"):
        load_kg({"triples": str(tmp_path / "t.tsv"), "options": {"delimiter": ","}})


def test_keys_a_saved_kg_folder_does_not_take_are_refused(files):
    load_kg(str(files / "triples.tsv")).save(files / "saved")
    with pytest.raises(KGSourceError, match=r"`labels` is for TSV/CSV triples files, not .*saved, a saved KG folder"):
        load_kg({"triples": str(files / "saved"), "labels": str(files / "labels.tsv")})
    assert load_kg({"triples": str(files / "saved"), "name": "go"}).info["name"] == "go"
