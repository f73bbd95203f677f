"""The English function words that :class:`~kgpeft.linking.EntityLinker` does not link by default."""

from __future__ import annotations

# NLTK's English list, less its forms with an apostrophe ("don't", "you're"). It holds the
# pieces that an apostrophe leaves ("don" of "don't", "ll" of "we'll"): the linker treats
# "'" as a word boundary, and WordNet has lemmas such as "don", "won", "ma", "re" that would
# otherwise be linked inside contractions. Most of these words are WordNet lemmas too ("a"
# vitamin A, "in" inch, "be" beryllium, "it" information technology, "can" container, "will"
# testament), whose senses are far rarer in running text than the function word.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against ain all am an and any are aren as at be because been
    before being below between both but by can couldn d did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers herself
    him himself his how i if in into is isn it its itself just ll m ma me mightn more most mustn my
    myself needn no nor not now o of off on once only or other our ours ourselves out over own re s
    same shan she should shouldn so some such t than that the their theirs them themselves then there
    these they this those through to too under until up ve very was wasn we were weren what when where
    which while who whom why will with won wouldn y you your yours yourself yourselves
    """.split()  # noqa: SIM905 (153 words read better as text than as 153 literals)
)
