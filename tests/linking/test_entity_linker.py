import json
import pickle
import unicodedata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgpeft import KnowledgeGraph
from kgpeft.datasets.wordnet import load_wordnet, wordnet_dir
from kgpeft.errors import LinkerFileError, OutputPathError
from kgpeft.linking import (
    ENGLISH_STOPWORDS,
    EntityLinker,
    Mention,
    alias_tables,
    entity_linker,
    matcher,
    normalize,
    storage,
)


def make_kg(
    names: list[list[str]],
    prior: list[float] | None = None,
    edges: list[tuple[int, int]] = (),
    name_priors: list[list[float]] | None = None,
) -> KnowledgeGraph:
    """A KG whose entity ``i`` is named ``names[i]`` (label first), with one relation for ``edges``."""
    triples = torch.tensor([[h for h, _ in edges], [0] * len(edges), [t for _, t in edges]], dtype=torch.long)
    return KnowledgeGraph(
        [f"e{i}" for i in range(len(names))],
        ["r"],
        triples.reshape(3, -1),
        labels=[n[0] for n in names],
        aliases=[n[1:] for n in names],
        entity_prior=prior,
        name_priors=name_priors,
    )


def spans(mentions: list[Mention]) -> list[tuple[int, int, str]]:
    return [(m.start, m.end, m.surface) for m in mentions]


@pytest.fixture
def city_linker() -> EntityLinker:
    kg = make_kg([["New York", "NYC"], ["New York City"], ["York"], ["York City"], ["city"], ["cat"], ["dog", "hound"]])
    return EntityLinker(kg)


def test_longest_match_wins(city_linker):
    assert [(m.surface, m.candidates) for m in city_linker.link("I love New York City!")] == [("New York City", (1,))]
    assert [(m.surface, m.candidates) for m in city_linker.link("New York, city of York")] == [
        ("New York", (0,)),
        ("city", (4,)),
        ("York", (2,)),
    ]


def test_overlapping_aliases_leftmost_first():
    kg = make_kg([["new york"], ["york city"], ["city hall"], ["hall"]])
    # "new york" starts first, so "york city" loses; "city hall" then overlaps nothing kept.
    assert [m.candidates for m in EntityLinker(kg).link("new york city hall")] == [(0,), (2,)]
    # Of two names starting at one place, the longer wins even when a shorter one would let more names match.
    kg = make_kg([["a b"], ["a b c"], ["c d"]])
    assert spans(EntityLinker(kg).link("a b c d")) == [(0, 5, "a b c")]


def test_word_boundaries(city_linker):
    assert city_linker.link("category concatenate cats scat hotdog dog2 dogé") == []
    text = "dog. (dog) dog's 'dog' dog-hound dog"
    assert spans(city_linker.link(text)) == [
        (0, 3, "dog"),
        (6, 9, "dog"),
        (11, 14, "dog"),
        (18, 21, "dog"),
        (23, 26, "dog"),
        (27, 32, "hound"),
        (33, 36, "dog"),
    ]


def test_case_and_whitespace(city_linker):
    text = "NEW\t york\n\n  CITY and new_york and nEw YoRk"
    assert spans(city_linker.link(text)) == [
        (0, 17, "NEW\t york\n\n  CITY"),
        (22, 30, "new_york"),
        (35, 43, "nEw YoRk"),
    ]
    kg = make_kg([["hot_dog"], ["Hot  Dog"]])  # one name, written two ways
    assert [m.candidates for m in EntityLinker(kg).link("a HOT DOG")] == [(0, 1)]


def test_punctuation_inside_names_must_match():
    kg = make_kg([["t-shirt"], ["t shirt"], ["C++"], ["U.S.A."], ["(x)"], ["rock 'n' roll"]])
    linker = EntityLinker(kg)
    assert [m.candidates for m in linker.link("T-shirt, t shirt, t.shirt")] == [(0,), (1,)]
    assert spans(linker.link("C++. c++x U.S.A. is (x) rock 'n' roll")) == [
        (0, 3, "C++"),
        (10, 16, "U.S.A."),
        (20, 23, "(x)"),
        (24, 37, "rock 'n' roll"),
    ]


def test_candidates_ranked_by_prior():
    names = [["bank"], ["Bank", "depository"], ["BANK"], ["bank"], ["river"]]
    kg = make_kg(names, prior=[1.0, 6.0, 3.0, 0.0, 5.0])
    (mention,) = EntityLinker(kg).link("the bank")
    assert mention.candidates == (1, 2, 0, 3) and mention.entity == 1
    assert mention.scores == pytest.approx((0.6, 0.3, 0.1, 0.0))
    # The scores are shares of all the name's entities, also those cut off by max_candidates.
    (mention,) = EntityLinker(kg, max_candidates=2).link("the bank")
    assert mention.candidates == (1, 2) and mention.scores == pytest.approx((0.6, 0.3))


def test_candidates_ranked_by_degree_without_prior():
    kg = make_kg([["bank"], ["bank"], ["bank"], ["x"]], edges=[(1, 3), (1, 2), (2, 3)])
    (mention,) = EntityLinker(kg).link("bank")
    assert mention.candidates == (1, 2, 0)  # degrees 2, 2, 0; the tie goes to the lower id
    assert mention.scores == pytest.approx((0.5, 0.5, 0.0))


def test_ties_in_prior_broken_by_degree_and_zero_priors_share_uniformly():
    kg = make_kg([["bank"], ["bank"], ["bank"]], prior=[0.0, 0.0, 0.0], edges=[(2, 1), (2, 0), (2, 2)])
    (mention,) = EntityLinker(kg).link("bank")
    assert mention.candidates == (2, 0, 1)
    assert mention.scores == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_name_prior_beats_entity_prior():
    # WordNet's case: the synset "guy, cat, bozo" is frequent, but mostly as "guy".
    names = [["guy", "cat", "bozo"], ["cat", "Cat"], ["cat"], ["x", "bozo"]]
    prior = [60.0, 30.0, 10.0, 9.0]
    name_priors = [[50.0, 2.0, 8.0], [18.0, 12.0], [0.0], [1.0, 8.0]]
    linker = EntityLinker(make_kg(names, prior, edges=[(3, 2)], name_priors=name_priors))
    cat, bozo = linker.link("a cat, a bozo")
    # "cat" and "Cat" of entity 1 normalise alike: the higher prior, 18, counts.
    assert cat.candidates == (1, 0, 2) and cat.scores == pytest.approx((0.9, 0.1, 0.0))
    # A tie in the name prior goes to the higher degree (entities 2 and 3 have 1, entity 0 has 0).
    assert bozo.candidates == (3, 0) and bozo.scores == pytest.approx((0.5, 0.5))
    # Without name priors, the entity prior ranks.
    (cat,) = EntityLinker(make_kg(names, prior, edges=[(3, 2)])).link("cat")
    assert cat.candidates == (0, 1, 2) and cat.scores == pytest.approx((0.6, 0.3, 0.1))


def test_unicode():
    kg = make_kg([["Straße"], ["İstanbul"], ["ΟΔΟΣ"], ["東京"], ["café"], ["ﬁsh"]])
    linker = EntityLinker(kg)
    # Casefolding changes lengths ("ß" -> "ss", "İ" -> "i̇", "ﬁ" -> "fi"); offsets stay in the original text.
    text = "İİ STRASSE, straße; İstanbul, ΟΔΟΣ οδος οδοσ in 東京 FISH ﬁsh"
    assert [(m.surface, m.candidates) for m in linker.link(text)] == [
        ("STRASSE", (0,)),
        ("straße", (0,)),
        ("İstanbul", (1,)),
        ("ΟΔΟΣ", (2,)),
        ("οδος", (2,)),
        ("οδοσ", (2,)),
        ("東京", (3,)),
        ("FISH", (5,)),
        ("ﬁsh", (5,)),
    ]
    for m in linker.link(text):
        assert text[m.start : m.end] == m.surface
    # A combining mark belongs to its word: "İ" is not "i".
    assert linker.link("istanbul") == []
    assert spans(linker.link("  café  ")) == [(2, 6, "café")]


def test_unicode_normalisation_on_both_sides():
    # Names and text are compared NFKC-normalised: composed and decomposed accents, ligatures,
    # full-width letters and no-break spaces; offsets stay in the original text.
    kg = make_kg([["café"], ["Cafe\u0301 Noir"], ["ﬁne art"], ["한국"], ["New York"]])
    linker = EntityLinker(kg)
    hanguk = "\u1112\u1161\u11ab\u1100\u116e\u11a8"  # Hangul jamo, which compose to 한국
    fine = "\uff26\uff29\uff2e\uff25"  # full-width FINE
    text = f"CAFE\u0301, café noir, Cafe\u0301\u00a0noir; fine art {fine} ART {hanguk} New\u00a0\u00a0York"
    assert [(m.surface, m.candidates) for m in linker.link(text)] == [
        ("CAFE\u0301", (0,)),
        ("café noir", (1,)),
        ("Cafe\u0301\u00a0noir", (1,)),
        ("fine art", (2,)),
        (f"{fine} ART", (2,)),
        (hanguk, (3,)),
        ("New\u00a0\u00a0York", (4,)),
    ]
    for m in linker.link(text):
        assert text[m.start : m.end] == m.surface
    # A mark on the last letter is part of the name's last letter: "cafe" + U+0301 + U+0301 is not "café".
    assert linker.link("cafe\u0301\u0301 e\u0301") == []


def test_link_rejects_what_is_not_text(city_linker):
    with pytest.raises(TypeError, match="`text` should be a str, got NoneType"):
        city_linker.link(None)
    with pytest.raises(TypeError, match="`texts` should be an iterable of str, got a single str"):
        city_linker.link_batch("usa")
    with pytest.raises(TypeError, match="`text` should be a str, got bytes"):
        city_linker.link_batch(["dog", b"cat"])


def test_empty_text_and_empty_linker(city_linker):
    assert city_linker.link("") == []
    assert city_linker.link(" \n\t ") == []
    empty = EntityLinker(make_kg([["a"], ["the"]]))
    assert empty.num_aliases == 0 and empty.link("a the") == []


def test_stopwords_and_short_names():
    kg = make_kg([["a", "vitamin A"], ["in", "inch"], ["It"], ["I"], ["ox"], ["..."]])
    text = "I put it in a box, an ox, vitamin a, an inch..."
    assert [m.surface for m in EntityLinker(kg).link(text)] == ["ox", "vitamin a", "inch"]
    linker = EntityLinker(kg, min_alias_length=1, stopwords=())
    assert [m.surface for m in linker.link(text)] == ["I", "it", "in", "a", "ox", "vitamin a", "inch"]
    assert [m.surface for m in EntityLinker(kg, min_alias_length=3, stopwords=["OX"]).link(text)] == [
        "vitamin a",
        "inch",
    ]
    assert "in" in ENGLISH_STOPWORDS and "don" in ENGLISH_STOPWORDS


def test_link_batch_and_repr(city_linker):
    assert city_linker.link_batch(["dog", "", "a cat"]) == [city_linker.link("dog"), [], city_linker.link("a cat")]
    assert city_linker.link_batch(iter(["hound", "York"])) == [city_linker.link("hound"), city_linker.link("York")]
    assert city_linker.link_batch([]) == []
    assert repr(city_linker) == "EntityLinker(num_entities=7, num_aliases=9, max_candidates=8)"


@pytest.mark.parametrize("other", ["", "é", "a  b"], ids=["ascii", "non-ascii", "whitespace-run"])
def test_link_batch_never_matches_across_texts(other):
    # link_batch searches its texts in one string, one after the other with pads between them
    # (a "\0" in the normalised form of ASCII texts), so a name with an inner space, or with
    # padding spaces in its pattern ("x..", "..22 caliber"), could match across two texts.
    # A non-ASCII text, or one with a run of whitespace, takes the batch off the ASCII fast path.
    kg = make_kg([["new york", "new\0york"], ["x.."], ["..22 caliber"], ["22 caliber"], ["york"], ["x"]])
    linker = EntityLinker(kg, min_alias_length=1, stopwords=())
    texts = ["new", "york", "x.", ".22 caliber", "new\0york", "x..", "..22 caliber", other]
    assert [spans(m) for m in linker.link_batch(texts)][:7] == [
        [],
        [(0, 4, "york")],
        [(0, 1, "x")],
        [(1, 11, "22 caliber")],
        [(0, 8, "new\0york")],
        [(0, 3, "x..")],
        [(0, 12, "..22 caliber")],
    ]
    assert linker.link_batch(texts) == [linker.link(text) for text in texts]


def test_pickles_for_dataloader_workers(city_linker):
    clone = pickle.loads(pickle.dumps(city_linker))
    text = "New York City, dog."
    assert clone.link(text) == city_linker.link(text) != []


def test_invalid_arguments():
    kg = make_kg([["dog"]])
    with pytest.raises(ValueError, match="`max_candidates` should be at least 1, got 0"):
        EntityLinker(kg, max_candidates=0)
    with pytest.raises(ValueError, match="`min_alias_length` should be at least 1, got 0"):
        EntityLinker(kg, min_alias_length=0)


def test_normalize():
    assert normalize("  New_York\n\t City ") == "new york city"
    assert normalize("Straße İ") == "strasse i̇"
    assert normalize("Cafe\u0301\u00a0ﬁ ＡＢ") == normalize("café fi ab") == "café fi ab"
    assert normalize("C++ (x)") == "c++ (x)"
    assert normalize("") == ""


# ----------------------------------------------------------------- properties
# Names chosen to collide under normalisation and to straddle the characters whose
# casefolding changes length or that have context rules ("ß", "İ", "Σ"/"ς", "ﬁ", marks).
PROPERTY_NAMES = [
    ["a", "A b"],
    ["ab", "a_b"],
    ["b c", "B-C"],
    ["ss", "ß"],
    ["s", "i"],
    ["i̇", "İ x"],
    ["c++", "c"],
    ["σς", "ΣΣ"],
    ["e\u0301", "e"],
    ["fi", "ﬁ s"],
    ["the", "x y z"],
    ["y", "(y)"],
    ["b"],
    ["é x", "\u1112\u1161\u11ab"],
]
PROPERTY_PRIOR = [1.0, 2.0, 2.0, 0.0, 5.0, 1.0, 3.0, 0.0, 2.0, 1.0, 1.0, 4.0, 2.0, 1.0]
PROPERTY_KG = make_kg(PROPERTY_NAMES, prior=PROPERTY_PRIOR, edges=[(0, 1), (2, 3)])
# Name priors that reverse the entity priors of "a b" and differ between names that normalise alike.
PROPERTY_KG_NAMED = make_kg(
    PROPERTY_NAMES,
    prior=PROPERTY_PRIOR,
    edges=[(0, 1), (2, 3)],
    name_priors=[
        [2, 3],
        [0, 1],
        [1, 0],
        [0, 2],
        [1, 1],
        [3, 0],
        [1, 2],
        [2, 0],
        [1, 1],
        [0, 1],
        [1, 1],
        [2, 2],
        [4],
        [1, 2],
    ],
)
ALPHABET = sorted(
    {c for names in PROPERTY_NAMES for n in names for c in n}
    | set("AaBSXYZİIıßΣςσﬁ\u0307 \t\n_-.+()'\u00a0\u00b4\uff21\u1112\u1161\u11ab\u0316")
)
ASCII_ALPHABET = [c for c in ALPHABET if c.isascii()]
PIECES = sorted(
    {f(n) for names in PROPERTY_NAMES for n in names for f in (str, str.upper)}
    | set(" \t\n_-.+()'İßσς\u0301x\u00a0\u00b4\u0316\u1112\u1161\u11ab\uff21")
)
TEXTS = (
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
    | st.text(alphabet=st.sampled_from(ALPHABET), max_size=30)
    | st.text(max_size=30)
)


def _is_word_char(c: str) -> bool:
    """Whether ``c`` is a letter, digit or mark; ``""`` (the text's edge) is not."""
    return c != "" and (c.isalnum() or unicodedata.category(c)[0] == "M")


def nfkc_fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def reference_link(text: str, kg: KnowledgeGraph, max_candidates: int, min_alias_length: int, stopwords) -> list:
    """The linker's definition, by brute force over all spans: a span that normalises alone as it
    does in the text, whose normalised text is a name, and whose neighbours fold to non-word
    characters; leftmost, then longest, first."""
    whole = unicodedata.normalize("NFKC", text)
    cuts = {k for k in range(len(text) + 1) if nfkc_fold(text[:k]) + nfkc_fold(text[k:]) == whole.casefold()}
    stop = {normalize(w) for w in stopwords}
    entities_of: dict[str, list[int]] = {}
    for e in range(kg.num_entities):
        for name in dict.fromkeys(map(normalize, kg.names(e))):
            if len(name) >= min_alias_length and name not in stop and any(map(_is_word_char, name)):
                entities_of.setdefault(name, []).append(e)
    degree = kg.degree.tolist()
    name_priors = kg.name_priors or [
        (p,) * (1 + len(a)) for p, a in zip(kg.entity_prior.tolist(), kg.aliases, strict=True)
    ]
    name_prior = {}  # (normalised name, entity) -> the highest prior of the entity's names of that form
    for e, priors in enumerate(name_priors):
        for name, p in zip((kg.labels[e], *kg.aliases[e]), priors, strict=True):
            name_prior[normalize(name), e] = max(p, name_prior.get((normalize(name), e), p))
    found, free = [], 0
    for i in range(len(text)):
        first = nfkc_fold(text[i:])[:1]
        if i < free or i not in cuts or first.isspace() or first == "_" or _is_word_char(nfkc_fold(text[:i])[-1:]):
            continue
        for j in range(len(text), i, -1):
            last = nfkc_fold(text[:j])[-1]
            if j not in cuts or last.isspace() or last == "_" or _is_word_char(nfkc_fold(text[j:])[:1]):
                continue
            if normalize(text[i:j]) not in entities_of:
                continue
            alias = normalize(text[i:j])
            ranked = sorted(entities_of[alias], key=lambda e: (-name_prior[alias, e], -degree[e], e))
            found.append((i, j, tuple(ranked[:max_candidates])))
            free = j
            break
    return found


@settings(max_examples=300, deadline=None)
@given(
    text=TEXTS,
    max_candidates=st.integers(1, 3),
    min_alias_length=st.integers(1, 3),
    stopwords=st.sampled_from([(), ENGLISH_STOPWORDS, ("B", "ss")]),
    kg=st.sampled_from([PROPERTY_KG, PROPERTY_KG_NAMED]),
)
def test_linker_matches_its_definition_on_any_text(text, max_candidates, min_alias_length, stopwords, kg):
    linker = EntityLinker(kg, max_candidates=max_candidates, min_alias_length=min_alias_length, stopwords=stopwords)
    mentions = linker.link(text)
    end = 0
    for m in mentions:
        assert end <= m.start < m.end <= len(text)  # inside the text, in order, not overlapping
        end = m.end
        assert m.surface == text[m.start : m.end]
        assert 1 <= len(m.candidates) <= max_candidates and len(m.scores) == len(m.candidates)
        assert all(0.0 <= s <= 1.0 for s in m.scores) and sum(m.scores) <= 1.0 + 1e-6
        for entity in m.candidates:
            assert normalize(m.surface) in {normalize(n) for n in kg.names(entity)}
    assert [(m.start, m.end, m.candidates) for m in mentions] == reference_link(
        text, kg, max_candidates, min_alias_length, stopwords
    )


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(TEXTS | st.text(alphabet=st.sampled_from(ASCII_ALPHABET), max_size=30), max_size=5),
    kg=st.sampled_from([PROPERTY_KG, PROPERTY_KG_NAMED]),
)
def test_link_batch_links_each_text_as_link_does(texts, kg):
    # ASCII-only batches take link_batch's fast path, the others fold each text alone.
    linker = EntityLinker(kg, min_alias_length=1, stopwords=())
    assert linker.link_batch(texts) == [linker.link(text) for text in texts]


@pytest.mark.slow
@pytest.mark.skipif(
    not (wordnet_dir() / "index.sense").is_file(),
    reason=f"no WordNet database in {wordnet_dir()} (apt-get install wordnet-base wordnet-sense-index)",
)
def test_wordnet_senses_ranked_by_name_prior():
    kg = load_wordnet()
    top = {m.surface: [kg.entity_keys[e] for e in m.candidates[:2]] for m in EntityLinker(kg).link("a cat, a bank")}
    # The feline (then the big cat), not "guy, cat, hombre, bozo", a frequent synset but rarely as "cat".
    assert top["cat"] == ["02121620-n", "02127808-n"]
    # Sloping land, then the depository financial institution.
    assert top["bank"] == ["09213565-n", "08420278-n"]


# ----------------------------------------------------------------- save / load
SAVED_NAMES = [
    ["New York", "NYC", "new_york"],
    ["New York City"],
    ["York"],
    ["t-shirt", "tee"],
    ["t shirt"],
    ["C++"],
    ["U.S.A."],
    ["(x)"],
    ["rock 'n' roll"],
    ["Straße"],
    ["İstanbul"],
    ["ΟΔΟΣ"],
    ["東京"],
    ["café", "Cafe\u0301 Noir"],
    ["ﬁsh"],
    ["\u1112\u1161\u11ab\u1100\u116e\u11a8"],
    ["bank"],
    ["Bank", "river bank"],
    ["a", "in"],
]
SAVED_TEXTS = [
    "I love New York City! NYC, new york, NEW_YORK",
    "T-shirt, t shirt, t.shirt, tee",
    "C++. c++x U.S.A. is (x) rock 'n' roll",
    "İİ STRASSE, straße; İstanbul, ΟΔΟΣ οδος οδοσ in 東京 FISH ﬁsh",
    "CAFE\u0301, café noir, Cafe\u0301\u00a0noir; 한국 and \u1112\u1161\u11ab\u1100\u116e\u11a8",
    "the bank of the river bank, a bank in York",
    "",
    "nothing to see",
]


@pytest.fixture
def saved_kg() -> KnowledgeGraph:
    return make_kg(SAVED_NAMES, prior=[float(i % 4) for i in range(len(SAVED_NAMES))], edges=[(0, 1), (16, 17)])


def test_save_load_round_trip(saved_kg, tmp_path):
    for options in [{}, {"max_candidates": 1, "min_alias_length": 1, "stopwords": ()}]:
        linker = EntityLinker(saved_kg, **options)
        linker.save(tmp_path / "linker", overwrite=True)
        assert sorted(p.name for p in (tmp_path / "linker").iterdir()) == sorted(
            ["linker.json", *(f"{n}.npy" for n in alias_tables.ARRAY_NAMES)]
        )
        loaded = EntityLinker.load(tmp_path / "linker", saved_kg)
        assert repr(loaded) == repr(linker)
        assert (loaded.max_candidates, loaded.min_alias_length, loaded.stopwords) == (
            linker.max_candidates,
            linker.min_alias_length,
            linker.stopwords,
        )
        expected = linker.link_batch(SAVED_TEXTS)
        assert any(expected)
        assert loaded.link_batch(SAVED_TEXTS) == expected
        assert pickle.loads(pickle.dumps(loaded)).link_batch(SAVED_TEXTS) == expected
        # The same options, given, are accepted.
        assert EntityLinker.load(tmp_path / "linker", saved_kg, **options).link_batch(SAVED_TEXTS) == expected


def test_save_load_empty_linker(tmp_path):
    kg = make_kg([["a"], ["the"]])
    EntityLinker(kg).save(tmp_path / "empty")
    loaded = EntityLinker.load(tmp_path / "empty", kg)
    assert loaded.num_aliases == 0 and loaded.link("a the") == []


def test_save_refuses_to_overwrite_or_lose_files(saved_kg, tmp_path):
    linker = EntityLinker(saved_kg)
    linker.save(tmp_path / "linker")
    with pytest.raises(FileExistsError):
        linker.save(tmp_path / "linker")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"notes\.txt"):
        linker.save(tmp_path / "other", overwrite=True)
    linker.save(tmp_path / "other", overwrite=True, force=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    assert EntityLinker.load(tmp_path / "other", saved_kg).link_batch(SAVED_TEXTS) == linker.link_batch(SAVED_TEXTS)


def test_load_refuses_another_kg_and_other_settings(saved_kg, tmp_path):
    EntityLinker(saved_kg, max_candidates=3).save(tmp_path / "linker")
    meta = tmp_path / "linker" / "linker.json"
    other = make_kg([*SAVED_NAMES, ["extra"]])
    with pytest.raises(LinkerFileError, match=r"linker\.json: the linker was built for another KG"):
        EntityLinker.load(tmp_path / "linker", other)
    with pytest.raises(LinkerFileError, match="built with max_candidates=3, not 8") as error:
        EntityLinker.load(tmp_path / "linker", saved_kg, max_candidates=8)
    assert error.value.path == str(meta) and isinstance(error.value, ValueError)
    with pytest.raises(LinkerFileError, match="built with min_alias_length=2, not 1"):
        EntityLinker.load(tmp_path / "linker", saved_kg, min_alias_length=1)
    with pytest.raises(LinkerFileError, match="built with other stopwords"):
        EntityLinker.load(tmp_path / "linker", saved_kg, stopwords=["bank"])
    # Stopwords compare after normalisation.
    EntityLinker.load(tmp_path / "linker", saved_kg, stopwords=[w.upper() for w in ENGLISH_STOPWORDS])


def test_load_refuses_corrupted_or_newer_files(saved_kg, tmp_path):
    folder = tmp_path / "linker"
    EntityLinker(saved_kg).save(folder)
    scores = folder / "scores.npy"
    good = scores.read_bytes()
    scores.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(LinkerFileError, match=r"scores\.npy: does not match its SHA-256 digest") as error:
        EntityLinker.load(folder, saved_kg)
    assert error.value.path == str(scores)
    scores.unlink()
    with pytest.raises(LinkerFileError, match=r"scores\.npy: is missing"):
        EntityLinker.load(folder, saved_kg)
    scores.write_bytes(good)
    assert EntityLinker.load(folder, saved_kg).link_batch(SAVED_TEXTS) == EntityLinker(saved_kg).link_batch(SAVED_TEXTS)

    meta_path = folder / "linker.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "version": storage.FORMAT_VERSION + 1}))
    with pytest.raises(LinkerFileError, match="written by a newer kgpeft"):
        EntityLinker.load(folder, saved_kg)
    meta_path.write_text(json.dumps({**meta, "num_aliases": meta["num_aliases"] + 1}))
    with pytest.raises(LinkerFileError, match="does not fit the other tables"):
        EntityLinker.load(folder, saved_kg)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "settings"}))
    with pytest.raises(LinkerFileError, match="incomplete or malformed"):
        EntityLinker.load(folder, saved_kg)
    meta_path.write_text("{")
    with pytest.raises(LinkerFileError, match="cannot be read"):
        EntityLinker.load(folder, saved_kg)
    with pytest.raises(LinkerFileError, match="not found"):
        EntityLinker.load(tmp_path / "nowhere", saved_kg)


def test_cached_builds_then_reuses(saved_kg, tmp_path, monkeypatch):
    options = {"max_candidates": 2, "stopwords": ()}
    built = EntityLinker.cached(saved_kg, cache_dir=tmp_path, **options)
    expected = EntityLinker(saved_kg, **options).link_batch(SAVED_TEXTS)
    assert built.link_batch(SAVED_TEXTS) == expected
    (folder,) = tmp_path.iterdir()

    # The second call loads: it neither normalises a name nor builds the tables.
    def refuse(*args):
        raise AssertionError("built again")

    with monkeypatch.context() as m:
        m.setattr(alias_tables, "normalize", refuse)
        m.setattr(entity_linker, "build_tables", refuse)
        loaded = EntityLinker.cached(saved_kg, cache_dir=tmp_path, **options)
    assert loaded.link_batch(SAVED_TEXTS) == expected and loaded.max_candidates == 2
    assert list(tmp_path.iterdir()) == [folder]

    # Other settings and another KG get their own folders.
    assert EntityLinker.cached(saved_kg, cache_dir=tmp_path).link_batch(SAVED_TEXTS) == EntityLinker(
        saved_kg
    ).link_batch(SAVED_TEXTS)
    EntityLinker.cached(make_kg([["dog"]]), cache_dir=tmp_path, **options)
    assert len(list(tmp_path.iterdir())) == 3

    # A corrupted cache is built again, with a warning.
    (folder / "candidates.npy").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"candidates\.npy: does not match"):
        again = EntityLinker.cached(saved_kg, cache_dir=tmp_path, **options)
    assert again.link_batch(SAVED_TEXTS) == expected
    EntityLinker.load(folder, saved_kg)  # and saved anew

    with pytest.raises(TypeError, match="unexpected keyword arguments: max_candidate"):
        EntityLinker.cached(saved_kg, cache_dir=tmp_path, max_candidate=2)
    with pytest.raises(ValueError, match="`max_candidates` should be at least 1"):
        EntityLinker.cached(saved_kg, cache_dir=tmp_path, max_candidates=0)


def test_cached_defaults_to_the_dataset_cache(saved_kg, tmp_path, monkeypatch):
    monkeypatch.setenv("KGPEFT_CACHE", str(tmp_path))
    EntityLinker.cached(saved_kg)
    assert len(list((tmp_path / "linkers").iterdir())) == 1


def test_link_with_a_small_memo(saved_kg, monkeypatch):
    expected = EntityLinker(saved_kg).link_batch(SAVED_TEXTS)
    monkeypatch.setattr(matcher, "_MEMO_SIZE", 2)
    linker = EntityLinker(saved_kg)
    assert linker.link_batch(SAVED_TEXTS * 2) == expected * 2
    assert sum(entry is not None for entry in linker._matcher._memo) <= 2


def test_link_batch_in_several_searches(saved_kg, monkeypatch):
    expected = EntityLinker(saved_kg).link_batch(SAVED_TEXTS)
    monkeypatch.setattr(entity_linker, "_SEARCH_TEXTS", 2)
    assert EntityLinker(saved_kg).link_batch(SAVED_TEXTS * 2 + ["x"]) == expected * 2 + [[]]
