import numpy as np
import pytest

from kgpeft.graph import strings
from kgpeft.graph.strings import RaggedStrings, StringTable

WORDS = ["cat", "", "café", "New York", "日本", "e\u0301", "a|b\tc"]


def test_string_table_is_a_list_of_strings():
    table = StringTable.from_strings(WORDS)
    assert len(table) == len(WORDS) and list(table) == WORDS and table == WORDS
    assert table[2] == "café" and table[-1] == "a|b\tc" and table[1] == ""
    assert table[1:4] == WORDS[1:4] and table[::2] == WORDS[::2] and table[5:2] == []
    assert table.index("日本") == 4 and "cat" in table and "dog" not in table
    assert table != [*WORDS[:-1], "other"] and table != WORDS[:-1]
    assert table.data.dtype == np.uint8 and table.offsets.tolist()[-1] == len("".join(WORDS).encode())
    with pytest.raises(IndexError, match="string index 7 out of range for 7 strings"):
        table[7]
    assert StringTable.from_strings([]) == [] and len(StringTable.from_strings(iter([]))) == 0


def test_chunks_give_the_same_strings(monkeypatch):
    monkeypatch.setattr(strings, "_CHUNK", 3)
    words = [f"w{i}" * (i % 4) for i in range(20)]
    table = StringTable.from_strings(iter(words))
    assert list(table) == words
    rows = [words[i : i + i % 3] for i in range(20)]
    ragged = RaggedStrings.from_rows(rows)
    assert list(ragged) == [tuple(r) for r in rows] and ragged == rows and ragged.num_strings == sum(map(len, rows))


def test_ragged_strings():
    rows = [("Ally",), (), ("Caz", "Carol"), ()]
    ragged = RaggedStrings.from_rows(rows)
    assert len(ragged) == 4 and ragged[2] == ("Caz", "Carol") and ragged[1] == () and ragged[-2] == ("Caz", "Carol")
    assert ragged[1:3] == [(), ("Caz", "Carol")] and ragged == rows and ragged != rows[:3]
    assert RaggedStrings.from_rows(rows) == ragged


def test_digest_sees_bytes_and_boundaries():
    a = StringTable.from_strings(["ab", "c"])
    assert a.digest() == StringTable.from_strings(["ab", "c"]).digest()
    assert a.digest() != StringTable.from_strings(["a", "bc"]).digest()  # same bytes, other strings
    assert a.digest() != StringTable.from_strings(["ab", "d"]).digest()


def test_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="`offsets` should start at 0 and end at len\\(data\\) \\(3\\)"):
        StringTable(np.frombuffer(b"abc", dtype=np.uint8), np.array([0, 2]))
    with pytest.raises(ValueError, match="`data` should be 1-D"):
        StringTable(np.zeros((1, 1), dtype=np.uint8), np.array([0, 1]))
    with pytest.raises(ValueError, match="`rowptr` should start at 0 and end at the number of strings \\(2\\)"):
        RaggedStrings(StringTable.from_strings(["a", "b"]), np.array([0, 1]))
