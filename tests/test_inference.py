"""Stopping generation once the first line is complete."""

import torch

from kgpeft.inference import FirstLineDone, first_line


class CharTokenizer:
    """Token ids are character codes; 0 is the (special) padding token."""

    def batch_decode(self, rows, skip_special_tokens=True):
        return ["".join(chr(int(t)) for t in row if not (skip_special_tokens and t == 0)) for row in rows]


def _ids(prompt: str, continuations: list[str]) -> torch.Tensor:
    width = max(map(len, continuations))
    rows = [[ord(c) for c in prompt] + [ord(c) for c in text] + [0] * (width - len(text)) for text in continuations]
    return torch.tensor(rows)


def test_a_row_is_done_once_a_newline_follows_text():
    continuations = ["", "\n", " \n ", "cat", "cat\n", "\n\ncat\n", "big cat\nsmall"]
    done = FirstLineDone(CharTokenizer(), prompt_length=3)(_ids("Q:\n", continuations), None)
    assert done.tolist() == [False, False, False, False, True, True, True]
    # what first_line reads of a finished row is what it reads of any longer continuation
    for text, finished in zip(continuations, done.tolist(), strict=True):
        if finished:
            assert first_line(text.strip()) == first_line((text + "more\ntext").strip())


def test_the_prompt_is_not_read():
    done = FirstLineDone(CharTokenizer(), prompt_length=8)(_ids("a\nb\nc\nd\n", ["x"]), None)
    assert done.tolist() == [False]
