"""Is a segment mainly English? The offline judge was trained on English only and reads other languages by topic (it
flagged a sixth of safe Spanish, French and German deliberations), so it declines to judge them.

Two cheap signals, no model: the script of the letters (mostly outside Latin: Chinese, Cyrillic, Arabic, styled
letters such as mathematical bold, which the judge's tokenizer cannot read either) and, for Latin-script text,
counts of function words of English and of six other European languages (Spanish, French, German, Portuguese,
Italian, Dutch; others, Polish or Turkish, are not recognised and are judged). Verbatim quotes of the user prompt
are left out first (thinking often quotes an English request in another language). Only words in lower case
count (or capitalised where a sentence starts), and not those joined to a dot, hyphen, slash or underscore, so names
("Los Angeles", "van Gogh"), abbreviations ("e.g.", "et al.") and code ("os.listdir", "de-escalate") do not; the
lists leave out words that are also common in English text or code ("die", "pour", "del", "per", "sin", "um", single
letters).
"""

from __future__ import annotations

import unicodedata
from collections import Counter

import regex

MIN_LETTERS = 20  # too little text to tell
MIN_FOREIGN = 3  # function words of other languages (more than English ones) before a segment reads as one of them

ENGLISH = frozenset("""the and of to is are was were that this it for with on as be by not or from at have has had but they
you we he she what which how will would can should could there their about if so do does an my me i a in no been
them these those any some into than then its it's i'm i'll don't can't let just also because more only out up who
when where why""".split())  # fmt: skip

OTHER = {
    "es": "el la los las de que en un una por para es se lo su como pero más esta este está muy sobre porque "
          "cuando también puede usuario ayudar debo pide quiere pregunta sería cómo qué",
    "fr": "le la les de des du est une un que qui dans pas sur avec ce cette sont je il elle nous vous ne au aux mais "
          "ou être très comment utilisateur aider dois à veut demande",
    "de": "der das und ist nicht ein eine einen zu von mit sich auf für im dem es ich sie wir wie auch oder aber werden "
          "kann diese dass bei nach noch nur nutzer benutzer helfen möchte",
    "pt": "uma de das que em na não é se por mais como mas isso ele ela ao pelo pela para com usuário "
          "ajudar devo pra à quer pede",
    "it": "il gli della di che è sono questo questa anche delle nel alla utente aiutare vuole chiede",
    "nl": "het een niet dat voor zijn ook maar wat naar deze wordt gebruiker helpen wil vraagt",
}  # fmt: skip
_OTHER = {lang: frozenset(words.split()) - ENGLISH for lang, words in OTHER.items()}
_ANY_OTHER = frozenset().union(*_OTHER.values())  # a word two languages share counts once
# A word in lower case, or capitalised where a sentence starts (not a name), not joined to a dot, hyphen, slash,
# underscore, digit or "(" (abbreviations, code).
_WORD = regex.compile(r"(?:(?<![\p{L}\p{N}_./\\-])\p{Ll}+|(?<=^|[.!?:;]\s+|\n\s*|[\"“«¿¡]\s*)\p{Lu}\p{Ll}*)(?:['’]\p{Ll}+)?"
                      r"(?![\p{L}\p{N}_/\\(-]|\.[\p{L}\p{N}])")
_ELISION = regex.compile(r"(?:l|d|qu|s|n|j|c|m|t|dell|all|nell|un)'\p{L}")  # l'alcool, d'impôts, s'il, dell'arma


def _script(ch: str) -> str:
    if unicodedata.normalize("NFKC", ch).isascii():  # mathematical bold, full-width: disguised Latin letters
        return "styled Latin letters"
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def foreign_language(text: str, prompt: str | None = None) -> str | None:
    """None when ``text`` is mainly English (or too short to tell), else what it reads as: a language code
    ("es", "fr", "de", "pt", "it", "nl") or the main non-Latin script ("CJK", "CYRILLIC", ...)."""
    if prompt and len(prompt) >= MIN_LETTERS:
        text = text.replace(prompt, " ")
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < MIN_LETTERS:
        return None
    non_latin = [ch for ch in letters if ord(ch) >= 0x250 and not 0x1E00 <= ord(ch) <= 0x1EFF]
    if 2 * len(non_latin) >= len(letters):
        return Counter(map(_script, non_latin)).most_common(1)[0][0]
    words = Counter(w.lower().replace("’", "'") for w in _WORD.findall(text))
    english = sum(n for w, n in words.items() if w in ENGLISH)
    per_lang = {lang: sum(n for w, n in words.items() if w in vocab) for lang, vocab in _OTHER.items()}
    elided = sum(n for w, n in words.items() if _ELISION.match(w))
    per_lang["fr"] += elided  # French and Italian write them; French far more
    foreign = elided + sum(n for w, n in words.items() if w in _ANY_OTHER)
    if foreign >= MIN_FOREIGN and foreign > english:
        return max(per_lang, key=per_lang.__getitem__)
    return None
