import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgpeft import KGFileNotFoundError, KGFormatError, KnowledgeGraph
from kgpeft.graph.readers import (
    SPLIT_FILES,
    read_entity_labels,
    read_ntriples,
    read_pykeen_folder,
    read_rdf,
    read_triples,
)


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


@pytest.mark.parametrize("name", ["kg.tsv", "kg.csv"])
def test_byte_order_mark_is_not_part_of_the_first_key(tmp_path, name):
    sep = "," if name.endswith(".csv") else "\t"
    kg = read_triples(write(tmp_path / name, b"\xef\xbb\xbf" + f"paris{sep}in{sep}france\n".encode()))
    assert kg.entity_keys == ["paris", "france"]
    labels = write(tmp_path / "labels.tsv", b"\xef\xbb\xbfparis\tParis\n")
    assert list(read_entity_labels(labels)) == ["paris"]
    nt = write(tmp_path / "kg.nt", b"\xef\xbb\xbf<http://e/a> <http://e/r> <http://e/b> .\n")
    assert read_ntriples(nt).entity_keys == ["http://e/a", "http://e/b"]


def test_csv_fields_follow_csv_quoting(tmp_path):
    f = write(
        tmp_path / "kg.csv",
        '"New York, NY",located_in,USA\n\n"say ""hi""",means,"a\nb"\nx , y , z\n',
    )
    kg = read_triples(f)
    assert kg.entity_keys == ["New York, NY", "USA", 'say "hi"', "a\nb", "x", "z"]
    assert kg.relation_keys == ["located_in", "means", "y"]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('a,r,b\n\n"a,b",r\n', 3, "expected 3 columns"),
        ('a,r,b\n"a"x,r,b\n', 2, "not valid CSV"),
        ('a,r,b\n"a,r,b\nc,r,d\n', 3, "not valid CSV"),  # an unclosed quote runs to the end
        ("a,r,b\n,,\n", 2, "column 1 is empty"),
        ('"x\ny",r\nc,r,d\n', 1, "expected 3 columns"),  # a record spanning lines is named by its first
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path, content, line, message):
    f = write(tmp_path / "bad.csv", content)
    with pytest.raises(KGFormatError, match=message) as err:
        read_triples(f)
    assert err.value.line == line and str(err.value).startswith(f"{f}:{line}: ")


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


def test_read_ntriples_language_is_a_bcp47_prefix(tmp_path):
    label = "<http://ex.org/{}> <http://www.w3.org/2000/01/rdf-schema#label> {} .\n"
    f = write(
        tmp_path / "kg.nt",
        "<http://ex.org/B> <http://ex.org/in> <http://ex.org/C> .\n"
        + label.format("B", '"Beijing"@en-GB')
        + label.format("C", '"China"@EN')
        + label.format("C", '"Chine"@fr')
        + label.format("B", '"Peking"@eng'),  # another language, not a subtag of "en"
    )
    kg = read_ntriples(f)
    assert kg.labels == ["Beijing", "China"]
    assert kg.info["names_in_other_languages"] == 2
    assert read_ntriples(f, language="EN-gb").labels == ["Beijing", "C"]
    assert read_ntriples(f, language=None).labels == ["Beijing", "China"]
    assert read_ntriples(f, language=None).aliases == [("Peking",), ("Chine",)]


@pytest.mark.parametrize("escape", [r"\U00110000", r"\uD800"])
def test_read_ntriples_escape_outside_unicode(tmp_path, escape):
    f = write(
        tmp_path / "kg.nt",
        f'<http://a> <http://r> <http://b> .\n<http://a> <http://www.w3.org/2000/01/rdf-schema#label> "x{escape}" .\n',
    )
    with pytest.raises(KGFormatError, match="is not a Unicode character") as err:
        read_ntriples(f)
    assert err.value.line == 2


def test_read_ntriples_bad_line(tmp_path):
    f = write(tmp_path / "kg.nt", "<http://a> <http://r> <http://b> .\n<http://a> <http://r> .\n")
    with pytest.raises(KGFormatError, match="not a valid N-Triples statement") as err:
        read_ntriples(f)
    assert err.value.line == 2


def test_ids_are_dense_long_tensors(tmp_path):
    kg = read_triples(write(tmp_path / "kg.tsv", "x\ty\tz\n"))
    assert kg.triples.dtype == torch.long and kg.triples.shape == (3, 1)


# ----------------------------------------------------------------- properties
# Any file gives a KnowledgeGraph or a KGFormatError naming the file and, unless the whole file
# is at fault, the line; never another exception. Files are random bytes or lines whose slots
# are mostly valid and sometimes broken.
BREAKERS = [b"", b"\xff", b"\xc3", b"\x00", b"\r", b'"', b" ", b"\t", b",", b"\tx", b",x", b"\n"]
TERMS = [b"a", b"b", b"New York", b'"New York, NY"', b'"say ""hi"""', b'"a\nb"', b" c ", b"\xc3\xa9t\xc3\xa9"]
IRIS = [b"<http://e/a>", b"<http://e/b>", b"_:b1", b"<bad iri>"]
PREDICATES = [
    b"<http://e/r>",
    b"<http://www.w3.org/2000/01/rdf-schema#label>",
    b"<http://www.w3.org/2004/02/skos/core#altLabel>",
    b"<http://www.w3.org/2000/01/rdf-schema#comment>",
]
LITERAL_TAGS = [b"", b"@en", b"@en-GB", b"@EN", b"@fr", b"^^<http://t>"]
LITERALS = [b'"x"', b'"a\\"b"', b'"\\u00e9\\U0001F600"', b'"\\uD800"', b'"\\U00110000"', b'"\\q"']


def near_valid_line(*slots: list[bytes]) -> st.SearchStrategy[bytes]:
    """A line made of one option per slot, or such a line with one slot replaced by a breaker."""
    valid = st.tuples(*(st.sampled_from(options) for options in slots))
    broken = st.tuples(valid, st.integers(0, len(slots) - 1), st.sampled_from(BREAKERS)).map(
        lambda t: (*t[0][: t[1]], t[2], *t[0][t[1] + 1 :])
    )
    return (valid | broken).map(b"".join)


def delimited_line(sep: bytes) -> st.SearchStrategy[bytes]:
    return near_valid_line(TERMS, [sep], TERMS, [sep], TERMS)


NT_LINE = near_valid_line(
    IRIS,
    [b" "],
    PREDICATES,
    [b" "],
    [*IRIS, *IRIS, *(literal + tag for literal in LITERALS for tag in LITERAL_TAGS)],
    [b" .", b" . # c"],
)


def near_valid(line: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A file of near-valid lines (maybe after a BOM, maybe with blank lines), or random bytes."""
    lines = st.lists(line | st.just(b""), max_size=6).map(b"\n".join)
    return st.tuples(st.sampled_from([b"", b"\xef\xbb\xbf"]), lines).map(b"".join) | st.binary(max_size=80)


TSV_FILES = near_valid(delimited_line(b"\t"))
CSV_FILES = near_valid(delimited_line(b","))


def check_read(read, path: Path, files: list[Path]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # repeated triples, skipped literals
            kg = read(path)
    except KGFormatError as e:
        assert e.path in {str(f) for f in files}, e
        if "contains no triples" in str(e):
            assert e.line is None
        else:
            assert 1 <= e.line <= Path(e.path).read_bytes().count(b"\n") + 1, e
            assert str(e).startswith(f"{e.path}:{e.line}: ")
        return
    assert isinstance(kg, KnowledgeGraph) and kg.num_triples >= 1
    assert all(key and not key.startswith("\ufeff") for key in kg.entity_keys + kg.relation_keys)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=150, deadline=None)
@given(suffix_content=st.tuples(st.just(".tsv"), TSV_FILES) | st.tuples(st.just(".csv"), CSV_FILES))
def test_any_delimited_file_reads_or_names_file_and_line(fuzz_dir, suffix_content):
    suffix, content = suffix_content
    path = write(fuzz_dir / f"kg{suffix}", content)
    check_read(read_triples, path, [path])


@settings(max_examples=100, deadline=None)
@given(train=TSV_FILES, valid=TSV_FILES, test=TSV_FILES)
def test_any_pykeen_folder_reads_or_names_file_and_line(fuzz_dir, train, valid, test):
    folder = fuzz_dir / "pykeen"
    folder.mkdir(exist_ok=True)
    files = [
        write(folder / name, content) for name, content in zip(SPLIT_FILES.values(), (train, valid, test), strict=True)
    ]
    check_read(lambda p: read_pykeen_folder(p, unknown="error"), folder, files)
    check_read(read_pykeen_folder, folder, files)


@settings(max_examples=150, deadline=None)
@given(content=near_valid(NT_LINE))
def test_any_ntriples_file_reads_or_names_file_and_line(fuzz_dir, content):
    path = write(fuzz_dir / "kg.nt", content)
    check_read(read_ntriples, path, [path])
    check_read(read_rdf, path, [path])


@pytest.mark.parametrize("flush", [2, 1 << 16])
def test_streamed_read_equals_an_in_memory_read(tmp_path, monkeypatch, flush):
    """The streaming readers give exactly the KG built from whole-file lists of strings."""
    from kgpeft.graph.readers import labels

    monkeypatch.setattr(labels, "_FLUSH", flush)  # several string-table chunks per column
    rows = {
        "train": [("q1", "p1", "q2"), ("q2", "p2", "q3"), ("q3", "p1", "q1"), ("q1", "p1", "q2"), ("q4", "p3", "q2")],
        "valid": [("q2", "p1", "q4")],
        "test": [("q3", "p2", "q4"), ("q3", "p2", "q4")],
    }
    labels = [
        ("q3", "Carol", "Caz|C.|  ", "third"),
        ("q9", "Nobody", "", ""),  # labelled, in no triple: kept without edges
        ("q1", "Ällice", "Ally", ""),
        ("q4", "Dave", "", "isolated one"),
    ]  # q2 has no row: labelled by its key
    folder = tmp_path / "kg"
    folder.mkdir()
    for split, triples in rows.items():
        write(folder / SPLIT_FILES[split], "".join("\t".join(t) + "\n" for t in triples))
    write(tmp_path / "labels.tsv", "".join("\t".join(r) + "\n" for r in labels))
    with pytest.warns(UserWarning, match="train: 1, test: 1"):
        streamed = read_pykeen_folder(folder, labels=tmp_path / "labels.tsv", unknown="error")

    # The in-memory reference: whole-file lists, a dict per labelled key.
    keys, relations = {}, {}
    ids = {}
    for split, triples in rows.items():
        seen = []
        for h, r, t in triples:
            triple = (
                keys.setdefault(h, len(keys)),
                relations.setdefault(r, len(relations)),
                keys.setdefault(t, len(keys)),
            )
            if triple not in seen:
                seen.append(triple)
        ids[split] = torch.tensor(seen).T
    by_key = {k: (label, tuple(a.strip() for a in al.split("|") if a.strip()), d) for k, label, al, d in labels}
    for key in by_key:
        keys.setdefault(key, len(keys))
    reference = KnowledgeGraph(
        list(keys),
        list(relations),
        ids["train"],
        labels=[by_key.get(k, (k,))[0] for k in keys],
        aliases=[by_key[k][1] if k in by_key else () for k in keys],
        descriptions=[by_key[k][2] if k in by_key else "" for k in keys],
        splits=ids,
    )
    assert streamed.fingerprint == reference.fingerprint and streamed.entity_keys == ["q1", "q2", "q3", "q4", "q9"]
    assert streamed.labels == reference.labels == ["Ällice", "q2", "Carol", "Dave", "Nobody"]
    assert streamed.aliases == reference.aliases == [("Ally",), (), ("Caz", "C."), (), ()]
    assert streamed.descriptions == reference.descriptions
    assert torch.equal(streamed.triples, reference.triples)
    assert all(torch.equal(streamed.splits[k], reference.splits[k]) for k in rows)
    assert streamed.entity_id("q9") == 4 and streamed.names(2) == ("Carol", "Caz", "C.")
    with pytest.warns(UserWarning, match="train: 1"):
        plain = read_triples(folder / "train.txt", labels=tmp_path / "labels.tsv")
    assert plain.labels == ["Ällice", "q2", "Carol", "Dave", "Nobody"] and plain.aliases[0] == ("Ally",)
