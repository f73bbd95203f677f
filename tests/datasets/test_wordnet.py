import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from kgpeft.datasets.wordnet import DEFAULT_DIR, ENV_VAR, RELATION_KEYS, load_wordnet
from kgpeft.errors import KGFileNotFoundError, KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph

# A six-synset WordNet in the real format. The noun and verb "00000100" differ only by POS;
# dog's two `+` pointers to "bark" repeat one synset triple, and its `+ 00000200 n 0102` is a
# lexical pointer within the synset.
FAKE = {
    "data.noun": (
        "  1 A fake license header: every line starts with two spaces.  \n"
        "  2 WordNet 3.0 Copyright 2006 by Princeton University.  \n"
        "00000100 03 n 01 entity 0 001 ~ 00000200 n 0000 | that which exists  \n"
        "00000200 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 004 @ 00000100 n 0000 + 00000100 v 0101 "
        '+ 00000100 v 0201 + 00000200 n 0102 | a domesticated canid; "the dog barked all night"; "a dog\'s life"  \n'
    ),
    "data.verb": "00000100 32 v 01 bark 0 001 + 00000200 n 0101 01 + 02 00 | make barking sounds  \n",
    "data.adj": (
        '00000300 01 a 01 canine(a) 0 001 \\ 00000200 n 0101 | of or relating to dogs; "canine teeth"  \n'
        "00000400 00 s 02 doglike(p) 0 doggy 0 001 & 00000300 a 0000 | resembling a dog  \n"
    ),
    "data.adv": "00000500 02 r 01 doggedly 0 001 \\ 00000300 a 0101 | with stubborn persistence  \n",
    "index.sense": (
        "bark%2:32:00:: 00000100 1 7\n"
        "canis_familiaris%1:05:00:: 00000200 1 3\n"
        "dog%1:05:00:: 00000200 1 42\n"
        "doglike%5:00:00:canine:00 00000400 1 2\n"
        "domestic_dog%1:05:00:: 00000200 1 0\n"
    ),
}


def write_wordnet(folder: Path, replace: dict[str, str] | None = None) -> Path:
    """Write :data:`FAKE` to ``folder``, with the files in ``replace`` (name to text) changed."""
    folder.mkdir()
    for name, text in {**FAKE, **(replace or {})}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_fake_wordnet(tmp_path: Path):
    kg = load_wordnet(write_wordnet(tmp_path / "wn"))

    assert kg.entity_keys == ["00000100-n", "00000200-n", "00000100-v", "00000300-a", "00000400-a", "00000500-r"]
    assert kg.relation_keys == list(RELATION_KEYS)
    assert kg.labels == ["entity", "dog", "bark", "canine", "doglike", "doggedly"]
    assert kg.aliases == [(), ("domestic dog", "Canis familiaris"), (), (), ("doggy",), ()]
    assert kg.descriptions == [
        "that which exists",
        "a domesticated canid",
        "make barking sounds",
        "of or relating to dogs",
        "resembling a dog",
        "with stubborn persistence",
    ]
    assert kg.extras["examples"] == [[], ["the dog barked all night", "a dog's life"], [], ["canine teeth"], [], []]
    assert kg.extras["lexname"] == ["noun.Tops", "noun.animal", "verb.communication", "adj.pert", "adj.all", "adv.all"]
    assert kg.extras["pos"] == ["n", "n", "v", "a", "s", "r"]
    assert kg.entity_prior.tolist() == [1, 46, 8, 1, 3, 1]
    # One plus the tag count of each sense. The sense keys "canis_familiaris" and "doglike" are
    # the words "Canis_familiaris" and "doglike(p)"; "doggy" has no sense line.
    assert kg.name_priors == [(1,), (43, 1, 4), (8,), (1,), (3, 1), (1,)]

    triples = [(kg.entity_keys[h], kg.relation_keys[r], kg.entity_keys[t]) for h, r, t in kg.triples.T.tolist()]
    assert triples == [
        ("00000100-n", "hyponym", "00000200-n"),
        ("00000200-n", "hypernym", "00000100-n"),
        ("00000200-n", "derivationally_related_form", "00000100-v"),
        ("00000100-v", "derivationally_related_form", "00000200-n"),
        ("00000300-a", "pertainym", "00000200-n"),
        ("00000400-a", "similar_to", "00000300-a"),
        ("00000500-r", "derived_from_adjective", "00000300-a"),
    ]
    assert kg.info == {
        "name": "WordNet 3.0",
        "source": str(tmp_path / "wn"),
        "num_synsets": 6,
        "num_pointers": 9,
        "num_semantic_pointers": 3,
        "num_lexical_pointers": 6,
        "self_loops_dropped": 1,
        "duplicates_dropped": 1,
        "num_triples": 7,
    }

    # WordNet states hypernym and hyponym both ways, so an edit of dog's hypernym edits entity's hyponym too
    assert kg.inverse_relations["hypernym"] == "hyponym" and kg.inverse_relations["similar_to"] == "similar_to"
    assert "pertainym" not in kg.inverse_relations  # one way only (adjective to noun)
    assert kg.edit(remove=[("00000200-n", "hypernym", "00000100-n")]).num_triples == kg.num_triples - 2

    kg.save(tmp_path / "saved")
    again = KnowledgeGraph.load(tmp_path / "saved")
    assert again.extras == kg.extras and again.aliases == kg.aliases and again.name_priors == kg.name_priors
    assert again.inverse_relations == kg.inverse_relations


def test_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV_VAR, str(write_wordnet(tmp_path / "wn")))
    assert load_wordnet().num_entities == 6


DOG = FAKE["data.noun"].splitlines(keepends=True)[3]


@pytest.mark.parametrize(
    "file, text, line, message",
    [
        ("data.noun", FAKE["data.noun"].replace(" 004 @", " 005 @"), 4, "fewer pointers than p_cnt=5"),
        ("data.noun", FAKE["data.noun"].replace("| a domesticated", "a domesticated"), 4, "no ' | '"),
        ("data.noun", FAKE["data.noun"].replace(" 05 n 03", " 45 n 03"), 4, "lex_filenum 45"),
        ("data.noun", FAKE["data.noun"].replace("~ 00000200", "? 00000200"), 3, "unknown pointer symbol '?'"),
        ("data.noun", FAKE["data.noun"].replace("~ 00000200 n", "~ 00000201 n"), 3, "00000201-n, which is in no"),
        ("data.noun", FAKE["data.noun"] + DOG, 5, "synset 00000200-n appears twice (first on line 4)"),
        ("data.adj", FAKE["data.adj"].replace(" 00 s ", " 00 n "), 2, "ss_type 'n' does not belong"),
        ("data.adv", FAKE["data.adv"].replace("| with", "01 + 02 00 | with"), 1, "4 unexpected fields"),
        ("index.sense", FAKE["index.sense"].replace("bark%2", "bark%7"), 1, "malformed sense line"),
        ("index.sense", FAKE["index.sense"].replace("00000400 1 2", "00000400 1 2 9"), 4, "malformed sense line"),
        (
            "index.sense",
            FAKE["index.sense"].replace("dog%1:05:00:: 00000200", "dog%2:05:00:: 00000200"),
            3,
            "00000200-v, which is in no",
        ),
        (
            "index.sense",
            FAKE["index.sense"].replace("domestic_dog%", "wolf%"),
            5,
            "sense of 'wolf', which is not a word of synset 00000200-n",
        ),
    ],
)
def test_malformed_line(tmp_path: Path, file: str, text: str, line: int, message: str):
    folder = write_wordnet(tmp_path / "wn", {file: text})
    with pytest.raises(KGFormatError, match=re.escape(message)) as err:
        load_wordnet(folder)
    assert (err.value.path, err.value.line) == (str(folder / file), line)
    assert str(err.value).startswith(f"{folder / file}:{line}: ")


def test_not_utf8(tmp_path: Path):
    folder = write_wordnet(tmp_path / "wn")
    (folder / "data.verb").write_bytes(b"\n" + FAKE["data.verb"].replace("barking", "b\xe4rking").encode("latin-1"))
    with pytest.raises(KGFormatError, match="not UTF-8") as err:
        load_wordnet(folder)
    assert (err.value.path, err.value.line) == (str(folder / "data.verb"), 2)


def test_missing_database(tmp_path: Path):
    with pytest.raises(KGFileNotFoundError, match="apt-get install wordnet-base wordnet-sense-index") as err:
        load_wordnet(tmp_path / "nowhere")
    assert ENV_VAR in str(err.value)
    assert isinstance(err.value, FileNotFoundError)

    folder = write_wordnet(tmp_path / "wn")
    (folder / "data.adv").unlink()
    with pytest.raises(KGFileNotFoundError, match=r"lacks data\.adv"):
        load_wordnet(folder)


SYSTEM_DIR = Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


@pytest.mark.slow
@pytest.mark.skipif(
    not (SYSTEM_DIR / "data.noun").is_file(),
    reason=f"no WordNet database in {SYSTEM_DIR} (apt-get install wordnet-base wordnet-sense-index)",
)
def test_system_wordnet():
    start = time.perf_counter()
    kg = load_wordnet(SYSTEM_DIR)
    seconds = time.perf_counter() - start
    print(f"\n{kg} loaded in {seconds:.1f} s; {kg.info}")

    assert kg.num_entities == kg.info["num_synsets"] == 117_659
    assert kg.num_relations == len(RELATION_KEYS)
    dog, canine = kg.entity_id("02084071-n"), kg.entity_id("02083346-n")
    assert kg.labels[dog] == "dog"
    assert kg.aliases[dog] == ("domestic dog", "Canis familiaris")
    assert kg.extras["lexname"][dog] == "noun.animal"
    assert kg.labels[canine] == "canine"
    hypernym = kg.relation_id("hypernym")
    assert any(t.tolist() == [dog, hypernym, canine] for t in kg.triples.T[kg.triples[0] == dog])
    # the triples of each relation paired in `inverse_relations` have their inverse triples (all but 29 of
    # derivationally_related_form's 63,649)
    h, r, t = kg.triples.numpy()
    shape = (kg.num_entities, kg.num_relations, kg.num_entities)
    inverse = np.array([kg.relation_id(kg.inverse_relations.get(key, key)) for key in kg.relation_keys])
    stated = np.isin(np.ravel_multi_index((t, inverse[r], h), shape), np.ravel_multi_index((h, r, t), shape))
    missing = {key: int((~stated[r == kg.relation_id(key)]).sum()) for key in kg.inverse_relations}
    assert missing == {key: 29 if key == "derivationally_related_form" else 0 for key in kg.inverse_relations}

    # The two common senses of "bank" (sloping land, financial institution) outrank its 16 others.
    banks = sorted((i for i in range(kg.num_entities) if "bank" in kg.names(i)), key=lambda i: -kg.entity_prior[i])
    assert {kg.entity_keys[i] for i in banks[:2]} == {"09213565-n", "08420278-n"}

    # "guy, cat, hombre, bozo" is a more frequent synset than the feline, but not as "cat".
    feline, guy = kg.entity_id("02121620-n"), kg.entity_id("10153414-n")
    assert kg.entity_prior[guy] > kg.entity_prior[feline]
    assert (kg.labels[guy], *kg.aliases[guy]) == ("guy", "cat", "hombre", "bozo")
    assert kg.name_priors[feline][0] > kg.name_priors[guy][1]
