#!/usr/bin/env python3
"""Golden values for Bonsai's ROUGE (Tests/BonsaiDataTests/Fixtures/rouge-golden.json): Porter stems of words
that exercise every rule of NLTK's stemmer, and ROUGE-1/2/L F-measures of prediction/reference pairs, from
Google's rouge-score 0.1.2 with use_stemmer=True (pip install rouge-score==0.1.2 nltk in the reference env).
  python scripts/make-golden-rouge.py > Tests/BonsaiDataTests/Fixtures/rouge-golden.json"""
import json
from nltk.stem import porter
from rouge_score import rouge_scorer

WORDS = """caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized hopping tanned
falling hissing fizzed failing filing happy sky relational conditional rational valenci hesitanci digitizer conformabli
radicalli differentli vileli analogousli vietnamization predication operator feudalism decisiveness hopefulness callousness
formaliti sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival allowance
inference airliner gyroscopic adjustable defensible irritant replacement adjustment dependent adoption homologou communism
activate angulariti homologous effective bowdlerize probate rate cease controll roll dying lying tying news innings outings
cannings howe proceed exceeded succeeding skies dies died spied flies cried generously generalization universities
enjoy enjoyment yyyy syzygy toy crying played playing studies studying organization organizational nationally nationalism
traditional archaeology theology geology analogies apologies fully hopefully carefully beautifully electrically
meeting meetings matting mating milling messing agreement achievement management government governments elections
election minister ministers economy economic economies economically announced announcing announcement technology
technologies technological digital computers computing computed players football champions championship england
london britain british financial markets marketing shares sharing company companies profits profitable growth growing
""".split()

CASES = [
    ("Blair wins third term in UK election", "Labour wins historic third term"),
    ("Shares in Google rise sharply", "Google shares rise sharply on profits"),
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("", "an empty prediction"),
    ("an empty reference", ""),
    ("Economy grows faster than expected", "UK economic growth faster than expected"),
    ("Champions League: Chelsea beat Barcelona", "Chelsea stun Barcelona in Champions League"),
    ("New mobile phones sell well in Europe", "Mobile phone sales grow in Europe"),
    ("Minister announces new technology plans", "Government announces technology plan for schools"),
    ("Oil prices hit record high of $55", "Oil price reaches a record $55 a barrel"),
    ("positive", "positive"),
    ("negative", "positive"),
    ("The film's director, 47, won an award.", "Director wins film award at 47"),
    ("Café owners in Zürich protest", "Zurich cafe owners protest"),
    ("studies studies studies", "studying studies"),
    ("a b c d e f", "f e d c b a"),
]

scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
stemmer = porter.PorterStemmer()
out = {"stems": {w: stemmer.stem(w) for w in sorted(set(WORDS))},
       "cases": [dict(prediction=p, reference=r, **{k: v.fmeasure for k, v in scorer.score(r, p).items()}) for p, r in CASES]}
print(json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False))
