import pytest
import torch

from kgpeft import KGFileNotFoundError, KGFormatError
from kgpeft.graph.readers import read_entity_labels, read_ntriples, read_pykeen_folder, read_triples


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_read_tsv_triples_by_hand(tmp_path):
    f = write(tmp_path / "kg.tsv", "paris\tcapital_of\tfrance\n\nlyon\tin\tfrance\nparis\tcapital_of\tfrance\n")
    with pytest.warns(UserWarning, match="train: 1"):
        kg = read_triples(f)
    assert kg.entity_keys == ["paris", "france", "lyon"]
    assert kg.relation_keys == ["capital_of", "in"]
    assert kg.triples.tolist() == [[0, 2], [0, 1], [1, 1]]
    assert kg.info["duplicates_dropped"] == {"train": 1}
    assert kg.splits == {}


def test_read_csv_with_header_and_labels(tmp_path):
    f = write(tmp_path / "kg.csv", "head,relation,tail\nQ90,P17,Q142\n")
    labels = write(
        tmp_path / "labels.tsv", "Q90\tParis\tCity of Light|Paname\tcapital of France\nQ142\tFrance\nQ1\tUniverse\t\t\n"
    )
    kg = read_triples(f, header=True, labels=labels)
    assert kg.entity_keys == ["Q90", "Q142", "Q1"]
    assert kg.labels == ["Paris", "France", "Universe"]
    assert kg.aliases == [("City of Light", "Paname"), (), ()]
    assert kg.descriptions == ["capital of France", "", ""]
    assert kg.degree.tolist() == [1, 1, 0], "a labelled entity without triples is kept, isolated"


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("a\tr\tb\na\tr\n", 2, "expected 3 columns"),
        ("a\tr\tb\n\na\tr\tb\tc\n", 3, "expected 3 columns"),
        ("a\t\tb\n", 1, "column 2 is empty"),
        (b"a\tr\tb\nd\xe9j\xe0\tr\tb\n", 2, "not valid UTF-8"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, content, line, message):
    f = write(tmp_path / "bad.tsv", content)
    with pytest.raises(KGFormatError, match=message) as err:
        read_triples(f)
    assert err.value.line == line
    assert str(err.value).startswith(f"{f}:{line}: ")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(KGFormatError, match="contains no triples"):
        read_triples(write(tmp_path / "empty.tsv", "\n\n"))
    with pytest.raises(KGFileNotFoundError, match=r"nope\.tsv"):
        read_triples(tmp_path / "nope.tsv")
    with pytest.raises(KGFileNotFoundError, match="KG folder not found"):
        read_pykeen_folder(tmp_path / "no_folder")


def test_labels_file_errors(tmp_path):
    with pytest.raises(KGFormatError, match="already labelled on line 1") as err:
        read_entity_labels(write(tmp_path / "l.tsv", "a\tA\nb\tB\na\tAgain\n"))
    assert err.value.line == 3
    with pytest.raises(KGFormatError, match="expected 2 to 4 columns"):
        read_entity_labels(write(tmp_path / "l2.tsv", "a\n"))


@pytest.fixture
def split_folder(tmp_path):
    write(tmp_path / "train.txt", "a\tr\tb\nb\tr\tc\nb\tr\tc\n")
    write(tmp_path / "valid.txt", "a\tr\tc\n")
    write(tmp_path / "test.txt", "c\tr\ta\nd\tr\ta\nc\ts\ta\n")
    return tmp_path


def test_pykeen_folder_unknown_add(split_folder):
    with pytest.warns(UserWarning, match="train: 1"):
        kg = read_pykeen_folder(split_folder)
    assert kg.entity_keys == ["a", "b", "c", "d"] and kg.relation_keys == ["r", "s"]
    assert kg.triples.tolist() == [[0, 1], [0, 0], [1, 2]], "the graph is the deduplicated training split"
    assert kg.splits["valid"].tolist() == [[0], [0], [2]]
    assert kg.splits["test"].tolist() == [[2, 3, 2], [0, 0, 1], [0, 0, 0]]
    assert kg.info["unknown_added"] == {"valid": 0, "test": 2}
    assert kg.degree[3] == 0


def test_pykeen_folder_unknown_drop(split_folder):
    with pytest.warns(UserWarning, match="unknown to training"):
        kg = read_pykeen_folder(split_folder, unknown="drop")
    assert kg.entity_keys == ["a", "b", "c"]
    assert kg.splits["test"].tolist() == [[2], [0], [0]]
    assert kg.info["unknown_dropped"] == {"valid": 0, "test": 2}


def test_pykeen_folder_unknown_error(split_folder):
    with pytest.raises(KGFormatError, match="'d' not in the training split") as err:
        read_pykeen_folder(split_folder, unknown="error")
    assert err.value.line == 2 and err.value.path.endswith("test.txt")
    with pytest.raises(ValueError, match="`unknown` should be one of"):
        read_pykeen_folder(split_folder, unknown="ignore")


def test_pykeen_folder_missing_split(tmp_path):
    write(tmp_path / "train.txt", "a\tr\tb\n")
    with pytest.raises(KGFileNotFoundError, match=r"valid\.txt"):
        read_pykeen_folder(tmp_path)


NT = r"""# a comment
<http://ex.org/Paris> <http://ex.org/capitalOf> <http://ex.org/France> .
<http://ex.org/Paris> <http://www.w3.org/2000/01/rdf-schema#label> "Paris"@en .
<http://ex.org/Paris> <http://www.w3.org/2004/02/skos/core#altLabel> "City of \"Light\""@en .
<http://ex.org/Paris> <http://www.w3.org/2000/01/rdf-schema#label> "Parigi"@it .
<http://ex.org/Paris> <http://ex.org/population> "2102650"^^<http://www.w3.org/2001/XMLSchema#integer> .
<http://ex.org/France> <http://www.w3.org/2000/01/rdf-schema#comment> "A country\u00A0in Europe" .
_:b1 <http://ex.org/locatedIn> <http://ex.org/France> .
"""


def test_read_ntriples(tmp_path):
    with pytest.warns(UserWarning, match="1 literal-valued triples"):
        kg = read_ntriples(write(tmp_path / "kg.nt", NT))
    assert kg.entity_keys == ["http://ex.org/Paris", "http://ex.org/France", "_:b1"]
    assert kg.relation_keys == ["http://ex.org/capitalOf", "http://ex.org/locatedIn"]
    assert kg.triples.tolist() == [[0, 2], [0, 1], [1, 1]]
    assert kg.labels == ["Paris", "France", "b1"]
    assert kg.aliases[0] == ('City of "Light"',)
    assert kg.descriptions[1] == "A country\u00a0in Europe"
    assert kg.info["literals_skipped"] == 1 and kg.info["names_in_other_languages"] == 1


def test_read_ntriples_bad_line(tmp_path):
    f = write(tmp_path / "kg.nt", "<http://a> <http://r> <http://b> .\n<http://a> <http://r> .\n")
    with pytest.raises(KGFormatError, match="not a valid N-Triples statement") as err:
        read_ntriples(f)
    assert err.value.line == 2


def test_ids_are_dense_long_tensors(tmp_path):
    kg = read_triples(write(tmp_path / "kg.tsv", "x\ty\tz\n"))
    assert kg.triples.dtype == torch.long and kg.triples.shape == (3, 1)
