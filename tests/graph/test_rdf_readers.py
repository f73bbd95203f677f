"""read_rdf and read_obo on small files written here: names, languages, blank nodes, compression, errors."""

import bz2
import gzip
import lzma
import warnings

import pytest

from kgpeft import KGFileNotFoundError, KGFormatError, KnowledgeGraph
from kgpeft.graph.readers.obo import read_obo
from kgpeft.graph.readers.rdf import read_rdf

EX = "http://ex.org/"
RDFS_LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
# One graph in four serialisations: labels in two languages and untagged, an alt-label, a description,
# a number literal (an attribute, no entity), an OWL someValuesFrom restriction and a plain blank node.
TURTLE = """@prefix ex: <http://ex.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
# a comment
ex:Paris ex:capitalOf ex:France ;  # another comment
    rdfs:label "Paris"@en, "Paname"@fr ;
    skos:altLabel "City of Light"@en ;
    ex:population 2102650 ;
    rdfs:subClassOf [ a owl:Restriction ; owl:onProperty ex:partOf ; owl:someValuesFrom ex:IleDeFrance ] .
ex:France rdfs:label "la France"@fr, "France" ; rdfs:comment "A country"@en .
ex:capitalOf rdfs:label "capital of"@en .
ex:partOf a owl:ObjectProperty .
ex:Lyon ex:near [ ex:what "unnamed" ] .
ex:Lyon ex:in ex:France .
"""
NTRIPLES = """# a comment
<http://ex.org/Paris> <http://ex.org/capitalOf> <http://ex.org/France> .
<http://ex.org/Paris> <http://www.w3.org/2000/01/rdf-schema#label> "Paris"@en .
<http://ex.org/Paris> <http://www.w3.org/2000/01/rdf-schema#label> "Paname"@fr .
<http://ex.org/Paris> <http://www.w3.org/2004/02/skos/core#altLabel> "City of Light"@en .
<http://ex.org/Paris> <http://ex.org/population> "2102650"^^<http://www.w3.org/2001/XMLSchema#integer> .
<http://ex.org/Paris> <http://www.w3.org/2000/01/rdf-schema#subClassOf> _:r .
_:r <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/2002/07/owl#Restriction> .
_:r <http://www.w3.org/2002/07/owl#onProperty> <http://ex.org/partOf> .
_:r <http://www.w3.org/2002/07/owl#someValuesFrom> <http://ex.org/IleDeFrance> .

<http://ex.org/France> <http://www.w3.org/2000/01/rdf-schema#label> "la France"@fr .
<http://ex.org/France> <http://www.w3.org/2000/01/rdf-schema#label> "France" .
<http://ex.org/France> <http://www.w3.org/2000/01/rdf-schema#comment> "A country"@en . # trailing comment
<http://ex.org/capitalOf> <http://www.w3.org/2000/01/rdf-schema#label> "capital of"@en .
<http://ex.org/partOf> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/2002/07/owl#ObjectProperty>.
<http://ex.org/Lyon> <http://ex.org/near> _:b .
_:b <http://ex.org/what> "unnamed" .
<http://ex.org/Lyon> <http://ex.org/in> <http://ex.org/France> .
"""
NQUADS = "".join(
    line[:-2] + " <http://ex.org/graph> .\n" if line.endswith(" .\n") and i % 2 else line
    for i, line in enumerate(NTRIPLES.replace(" . # trailing comment", " .").splitlines(keepends=True))
)
RDFXML = """<?xml version="1.0"?>
<!-- a comment -->
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#"
    xmlns:skos="http://www.w3.org/2004/02/skos/core#" xmlns:owl="http://www.w3.org/2002/07/owl#"
    xmlns:ex="http://ex.org/">
  <rdf:Description rdf:about="http://ex.org/Paris">
    <ex:capitalOf rdf:resource="http://ex.org/France"/>
    <rdfs:label xml:lang="en">Paris</rdfs:label>
    <rdfs:label xml:lang="fr">Paname</rdfs:label>
    <skos:altLabel xml:lang="en">City of Light</skos:altLabel>
    <ex:population rdf:datatype="http://www.w3.org/2001/XMLSchema#integer">2102650</ex:population>
    <rdfs:subClassOf>
      <owl:Restriction>
        <owl:onProperty rdf:resource="http://ex.org/partOf"/>
        <owl:someValuesFrom rdf:resource="http://ex.org/IleDeFrance"/>
      </owl:Restriction>
    </rdfs:subClassOf>
  </rdf:Description>
  <rdf:Description rdf:about="http://ex.org/France">
    <rdfs:label xml:lang="fr">la France</rdfs:label>
    <rdfs:label>France</rdfs:label>
    <rdfs:comment xml:lang="en">A country</rdfs:comment>
  </rdf:Description>
  <rdf:Description rdf:about="http://ex.org/capitalOf">
    <rdfs:label xml:lang="en">capital of</rdfs:label>
  </rdf:Description>
  <owl:ObjectProperty rdf:about="http://ex.org/partOf"/>
  <rdf:Description rdf:about="http://ex.org/Lyon">
    <ex:near><rdf:Description><ex:what>unnamed</ex:what></rdf:Description></ex:near>
    <ex:in rdf:resource="http://ex.org/France"/>
  </rdf:Description>
</rdf:RDF>
"""
JSONLD = """{
  "@context": {"ex": "http://ex.org/", "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
               "skos": "http://www.w3.org/2004/02/skos/core#", "owl": "http://www.w3.org/2002/07/owl#"},
  "@graph": [
    {"@id": "ex:Paris", "ex:capitalOf": {"@id": "ex:France"},
     "rdfs:label": [{"@value": "Paris", "@language": "en"}, {"@value": "Paname", "@language": "fr"}],
     "skos:altLabel": {"@value": "City of Light", "@language": "en"},
     "ex:population": 2102650,
     "rdfs:subClassOf": {"@type": "owl:Restriction", "owl:onProperty": {"@id": "ex:partOf"},
                         "owl:someValuesFrom": {"@id": "ex:IleDeFrance"}}},
    {"@id": "ex:France", "rdfs:label": [{"@value": "la France", "@language": "fr"}, "France"],
     "rdfs:comment": {"@value": "A country", "@language": "en"}},
    {"@id": "ex:capitalOf", "rdfs:label": {"@value": "capital of", "@language": "en"}},
    {"@id": "ex:partOf", "@type": "owl:ObjectProperty"},
    {"@id": "ex:Lyon", "ex:near": {"ex:what": "unnamed"}, "ex:in": {"@id": "ex:France"}}
  ]
}
"""
SERIALISATIONS = {"kg.ttl": TURTLE, "kg.nt": NTRIPLES, "kg.nq": NQUADS, "kg.rdf": RDFXML, "kg.jsonld": JSONLD}


def read(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kg = read_rdf(path, **kwargs)
    return kg, [str(w.message) for w in caught]


def as_sets(kg):
    """The KG without its ids: entity names and triples by key, the same whatever order a parser gives."""
    names = {k: (kg.labels[i], tuple(kg.aliases[i]), kg.descriptions[i]) for i, k in enumerate(kg.entity_keys)}
    triples = {(kg.entity_keys[h], kg.relation_keys[r], kg.entity_keys[t]) for h, r, t in kg.triples.T.tolist()}
    return names, triples


@pytest.mark.parametrize("name", list(SERIALISATIONS))
def test_every_serialisation_reads_to_the_same_kg(tmp_path, name):
    path = tmp_path / name
    path.write_text(SERIALISATIONS[name], encoding="utf-8")
    kg, messages = read(path)
    names, triples = as_sets(kg)
    assert names == {
        EX + "Paris": ("Paris", ("City of Light",), ""),  # the English label, the French one dropped
        EX + "France": ("France", (), "A country"),  # untagged before French
        EX + "Lyon": ("Lyon", (), ""),  # no label: the IRI's local name
        EX + "IleDeFrance": ("IleDeFrance", (), ""),
    }, "literals are attributes, not entities; blank nodes and the declared property are no entities"
    assert triples == {
        (EX + "Paris", "capital of", EX + "France"),  # the predicate's label names the relation
        (EX + "Paris", "partOf", EX + "IleDeFrance"),  # the OWL restriction, its local name
        (EX + "Lyon", "in", EX + "France"),
    }
    assert kg.info["relation_iris"]["capital of"] == EX + "capitalOf"
    assert kg.info["literals_skipped"] == 1, "the population literal"
    assert kg.info["blank_node_triples_skipped"] == 2, "Lyon near _:b and _:b what 'unnamed'"
    assert kg.info["names_in_other_languages"] == 2
    assert kg.info["entities_without_label"] == 2
    assert kg.info["declarations_skipped"] == 1
    assert any("2 triples with a blank node" in m for m in messages)
    assert any("1 literal-valued triples" in m for m in messages)


def test_language_preference_then_untagged_then_any(tmp_path):
    path = tmp_path / "kg.ttl"
    path.write_text(
        "@prefix ex: <http://ex.org/> .\n@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        'ex:a ex:r ex:b, ex:c .\nex:a rdfs:label "Peking"@de, "Beijing"@en-GB, "Pékin" .\n'
        'ex:b rdfs:label "Chine"@fr, "China"@de .\nex:c rdfs:label "C"@EN .\n',
        encoding="utf-8",
    )
    names, _ = as_sets(read(path)[0])
    assert names[EX + "a"][:2] == ("Beijing", ("Pékin",)), "en-GB is under 'en'; untagged kept as an alias"
    assert names[EX + "b"][:2] == ("Chine", ("China",)), "no English or untagged name: any language"
    assert names[EX + "c"][0] == "C"
    names, _ = as_sets(read(path, language="fr")[0])
    assert names[EX + "a"][:2] == ("Pékin", ()) and names[EX + "b"][:2] == ("Chine", ())
    names, _ = as_sets(read(path, language=None)[0])
    assert names[EX + "a"][:2] == ("Peking", ("Beijing", "Pékin")), "all languages alike, in file order"


def test_configurable_name_predicates(tmp_path):
    path = tmp_path / "kg.nt"
    path.write_text(
        '<http://ex.org/a> <http://ex.org/r> <http://ex.org/b> .\n<http://ex.org/a> <http://ex.org/name> "Alpha" .\n'
        '<http://ex.org/a> <http://ex.org/nick> "Al" .\n<http://ex.org/a> <http://ex.org/about> "first" .\n',
        encoding="utf-8",
    )
    kg, _ = read(
        path,
        label_predicates=[EX + "name"],
        alias_predicates=[EX + "nick"],
        description_predicates=[EX + "about"],
    )
    assert (kg.labels[0], kg.aliases[0], kg.descriptions[0]) == ("Alpha", ("Al",), "first")
    assert read(path)[0].labels[0] == "a", "ex:name is no label predicate by default"


@pytest.mark.parametrize(
    ("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)]
)
@pytest.mark.parametrize("name", ["kg.nt", "kg.ttl"])
def test_compressed_files_read_like_plain_ones(tmp_path, name, suffix, compress):
    plain = tmp_path / name
    plain.write_text(SERIALISATIONS[name], encoding="utf-8")
    packed = tmp_path / (name + suffix)
    packed.write_bytes(compress(plain.read_bytes()))
    assert as_sets(read(packed)[0]) == as_sets(read(plain)[0])


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("kg.nt", "<http://a> <http://r> <http://b> .\n\n<http://a> <http://r> .\n", 3, "not valid nt"),
        (
            "kg.nq",
            "<http://a> <http://r> <http://b> <http://g> .\n<http://a> <http://r> <http://b> <g> x\n",
            2,
            "nquads",
        ),
        ("kg.nt", b'<http://a> <http://r> <http://b> .\n<http://a> <http://r> "d\xe9j\xe0" .\n', 2, "UTF-8"),
        ("kg.ttl", "@prefix ex: <http://ex.org/> .\nex:a ex:r ex:b .\nex:a ex:r .\n", 3, "not valid turtle"),
        (
            "kg.rdf",
            RDFXML.replace(
                '</rdf:Description>\n  <rdf:Description rdf:about="http://ex.org/France">',
                '</rdf:Descriptio>\n  <rdf:Description rdf:about="http://ex.org/France">',
            ),
            18,
            "not valid RDF/XML",
        ),
        ("kg.jsonld", '{"@id": "http://a",\n "http://r": {"@id": "http://b"},\n}\n', 3, "not valid json-ld"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, name, text, line, message):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(KGFormatError, match=message) as err:
        read_rdf(path)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ") and "\n" not in str(err.value)


def test_unknown_suffix_and_no_edges_are_errors(tmp_path):
    path = tmp_path / "kg.data"
    path.write_text("<http://a> <http://r> <http://b> .\n", encoding="utf-8")
    with pytest.raises(KGFormatError, match="pass `format=`"):
        read_rdf(path)
    assert read_rdf(path, format="nt").entity_keys == ["http://a", "http://b"]
    only_labels = tmp_path / "labels.nt"
    only_labels.write_text('<http://a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n', encoding="utf-8")
    with pytest.raises(KGFormatError, match="contains no triples between resources"):
        read_rdf(only_labels)


OBO = """format-version: 1.4
ontology: test
! a comment line

[Term]
id: T:1
name: organ ! trailing comment
def: "A part of a body." [PMID:1]
synonym: "body part" EXACT []
synonym: "viscus" RELATED [x:y]

[Term]
id: T:2
name: heart
synonym: "cor" EXACT []
synonym: "cardiac organ" NARROW []
is_a: T:1 ! organ
relationship: part_of T:3
intersection_of: T:1
intersection_of: part_of T:3

[Term]
id: T:3
! a comment line inside a frame
name: circulatory system
is_a: T:5

[Term]
id: T:4
name: old heart
is_obsolete: true
is_a: T:1

[Typedef]
id: part_of
name: part of
"""


def read_obo_file(tmp_path, text=OBO, name="onto.obo", **kwargs):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_obo(path, **kwargs)


def test_read_obo_names_synonyms_definitions_relations(tmp_path):
    kg = read_obo_file(tmp_path)
    names, triples = as_sets(kg)
    assert names == {
        "T:1": ("organ", ("body part",), "A part of a body."),  # RELATED synonyms are no aliases by default
        "T:2": ("heart", ("cor",), ""),
        "T:3": ("circulatory system", (), ""),
        "T:5": ("T:5", (), ""),  # named by an edge, declared nowhere
    }, "the obsolete term is left out"
    assert triples == {("T:2", "is_a", "T:1"), ("T:2", "part of", "T:3"), ("T:3", "is_a", "T:5")}
    assert kg.info["relation_ids"] == {"is_a": "is_a", "part of": "part_of"}
    assert kg.info["obsolete_terms_skipped"] == 1 and kg.info["obsolete_edges_skipped"] == 1
    assert kg.info["undeclared_terms"] == 1 and kg.info["intersections_skipped"] == 2


def test_read_obo_options(tmp_path):
    kg = read_obo_file(tmp_path, include_obsolete=True, synonym_scopes=("EXACT", "RELATED", "NARROW"))
    names, triples = as_sets(kg)
    assert names["T:4"][0] == "old heart" and ("T:4", "is_a", "T:1") in triples
    assert names["T:1"][1] == ("body part", "viscus") and names["T:2"][1] == ("cor", "cardiac organ")
    _, triples = as_sets(read_obo_file(tmp_path, relations=["part_of"]))
    assert triples == {("T:2", "part of", "T:3")}
    _, triples = as_sets(read_obo_file(tmp_path, intersections=True))
    assert ("T:2", "intersection_of", "T:1") in triples and len(triples) == 4, "the differentia repeats part_of"
    with pytest.raises(KGFormatError, match="has no relation 'develops_from'; its relations are 'is_a', 'part of'"):
        read_obo_file(tmp_path, relations=["develops_from"])


def test_read_obo_gzip(tmp_path):
    assert as_sets(read_obo_file(tmp_path, gzip.compress(OBO.encode()), name="onto.obo.gz")) == as_sets(
        read_obo_file(tmp_path)
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [(OBO.replace("is_a: T:1 ! organ", "is_a T:1"), 17), (OBO.replace('def: "A part', "def: A part"), 8)],
)
def test_malformed_obo_names_file_and_line(tmp_path, text, line):
    path = tmp_path / "onto.obo"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KGFormatError, match="not valid OBO") as err:
        read_obo(path)
    assert err.value.line == line and str(err.value).startswith(f"{path}:{line}: ")


# An OBO ontology as OWL (RDF/XML, as ROBOT writes it): the ontology header, annotation properties,
# part_of as an object property with a label, exact synonyms, IAO definitions and an axiom annotation.
OWL_XML = """<?xml version="1.0"?>
<rdf:RDF xmlns="http://purl.obolibrary.org/obo/t.owl#" xmlns:obo="http://purl.obolibrary.org/obo/"
     xmlns:owl="http://www.w3.org/2002/07/owl#" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
     xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#"
     xmlns:oboInOwl="http://www.geneontology.org/formats/oboInOwl#">
    <owl:Ontology rdf:about="http://purl.obolibrary.org/obo/t.owl">
        <rdfs:comment>A test ontology.</rdfs:comment>
    </owl:Ontology>
    <owl:AnnotationProperty rdf:about="http://www.geneontology.org/formats/oboInOwl#hasExactSynonym">
        <rdfs:label>has_exact_synonym</rdfs:label>
    </owl:AnnotationProperty>
    <owl:ObjectProperty rdf:about="http://purl.obolibrary.org/obo/BFO_0000050">
        <rdfs:label>part of</rdfs:label>
    </owl:ObjectProperty>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/T_1">
        <obo:IAO_0000115>A part of a body.</obo:IAO_0000115>
        <oboInOwl:hasExactSynonym>body part</oboInOwl:hasExactSynonym>
        <rdfs:label>organ</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/T_2">
        <rdfs:subClassOf rdf:resource="http://purl.obolibrary.org/obo/T_1"/>
        <rdfs:subClassOf>
            <owl:Restriction>
                <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/BFO_0000050"/>
                <owl:someValuesFrom rdf:resource="http://purl.obolibrary.org/obo/T_3"/>
            </owl:Restriction>
        </rdfs:subClassOf>
        <rdfs:label>heart</rdfs:label>
    </owl:Class>
    <owl:Axiom>
        <owl:annotatedSource rdf:resource="http://purl.obolibrary.org/obo/T_1"/>
        <owl:annotatedProperty rdf:resource="http://www.geneontology.org/formats/oboInOwl#hasExactSynonym"/>
        <owl:annotatedTarget>body part</owl:annotatedTarget>
        <oboInOwl:hasDbXref>PMID:1</oboInOwl:hasDbXref>
    </owl:Axiom>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/T_3">
        <rdfs:label>circulatory system</rdfs:label>
    </owl:Class>
</rdf:RDF>
"""


def test_owl_ontology_reads_classes_synonyms_definitions_and_restrictions(tmp_path):
    path = tmp_path / "t.owl"
    path.write_text(OWL_XML, encoding="utf-8")
    kg, messages = read(path)
    names, triples = as_sets(kg)
    obo = "http://purl.obolibrary.org/obo/"
    assert names == {
        obo + "T_1": ("organ", ("body part",), "A part of a body."),
        obo + "T_2": ("heart", (), ""),
        obo + "T_3": ("circulatory system", (), ""),
    }, "the ontology header and the declared properties are no entities"
    assert triples == {(obo + "T_2", "subClassOf", obo + "T_1"), (obo + "T_2", "part of", obo + "T_3")}
    assert kg.info["blank_node_triples_skipped"] == 5, "the owl:Axiom's type, source, property, target and xref"
    assert kg.info["declarations_skipped"] == 6, "the ontology, two properties and three classes"
    assert any("5 triples with a blank node" in m for m in messages)


def _truncated_gzip(text: str) -> bytes:
    return gzip.compress(text.encode())[:-12]  # without the gzip trailer


def _corrupt_bzip2(text: str) -> bytes:
    """bzip2's "Invalid data stream" is a plain OSError (read_rdf and read_obo let it through before)."""
    data = bz2.compress(text.encode())
    return data[:20] + bytes(b ^ 0xFF for b in data[20:])


@pytest.mark.parametrize("damage", [_truncated_gzip, _corrupt_bzip2])
@pytest.mark.parametrize(("name", "text"), [("kg.nt", NTRIPLES), ("kg.ttl", TURTLE), ("onto.obo", OBO)])
def test_broken_compressed_file_is_a_format_error(tmp_path, name, text, damage):
    path = tmp_path / (name + (".gz" if damage is _truncated_gzip else ".bz2"))
    path.write_bytes(damage(text))
    reader = read_obo if name.startswith("onto") else read_rdf
    with pytest.raises(KGFormatError, match="compressed data is corrupt or truncated") as err:
        reader(path)
    assert str(err.value).startswith(f"{path}")
    if name.endswith(".nt"):  # read a line at a time: the line it breaks off at
        assert err.value.line >= 1


@pytest.mark.parametrize(("name", "text"), [("kg.nt", NTRIPLES), ("kg.ttl", TURTLE), ("onto.obo", OBO)])
def test_compressed_data_is_known_by_its_bytes_not_its_name(tmp_path, name, text):
    """As the TSV reader does: gzip data under a plain name is decompressed, plain text under a .gz name read."""
    reader = read_obo if name.startswith("onto") else read_rdf
    plain = tmp_path / name
    plain.write_text(text, encoding="utf-8")
    (tmp_path / "packed").mkdir()
    packed = tmp_path / "packed" / name
    packed.write_bytes(gzip.compress(text.encode()))
    named = tmp_path / (name + ".gz")
    named.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert as_sets(reader(packed)) == as_sets(reader(named)) == as_sets(reader(plain))


def test_missing_file(tmp_path):
    with pytest.raises(KGFileNotFoundError, match="KG file not found"):
        read_rdf(tmp_path / "kg.ttl")
    with pytest.raises(KGFileNotFoundError, match="KG file not found"):
        read_obo(tmp_path / "onto.obo")


@pytest.mark.parametrize("escape", [r"\U00110000", r"\uD800"])
def test_escape_outside_unicode_names_the_line(tmp_path, escape):
    path = tmp_path / "kg.nt"
    path.write_text(f'<http://a> <http://r> <http://b> .\n<http://a> {RDFS_LABEL} "x{escape}" .\n', encoding="utf-8")
    with pytest.raises(KGFormatError, match="not valid nt") as err:
        read_rdf(path)
    assert err.value.line == 2


def test_lone_surrogate_in_turtle_is_a_format_error(tmp_path):
    path = tmp_path / "kg.ttl"
    path.write_text(f'<http://a> <http://r> <http://b> .\n<http://a> {RDFS_LABEL} "x\\uD800" .\n', encoding="utf-8")
    with pytest.raises(KGFormatError, match=r"not valid turtle.*surrogates not allowed"):
        read_rdf(path)


def test_read_kgs_save_and_load(tmp_path):
    for name, text in [("kg.ttl", TURTLE), ("onto.obo", OBO)]:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        kg = read(path)[0] if name.endswith(".ttl") else read_obo_file(tmp_path, text, name)
        kg.save(tmp_path / f"saved-{name}")
        loaded = KnowledgeGraph.load(tmp_path / f"saved-{name}")
        assert as_sets(loaded) == as_sets(kg) and loaded.info == kg.info
