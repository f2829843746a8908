"""WordPiece, the tokenizer mBERT reads text through (paper Sec 3.2; Devlin et al. 2019, Sec 3).

Mirrors google-research/bert tokenization.py, the code mBERT was pre-trained with: a
BasicTokenizer (clean the text, space out CJK ideographs, lowercase and strip accents when
uncased, split on whitespace and punctuation) feeds a WordpieceTokenizer (greedy
longest-match-first against vocab.txt, "##" marks a continuation).

    >>> wp = WordPiece.from_pretrained("bert-base-multilingual-cased")  # or a local folder
    >>> wp.basic("Müller, 北京!")  # -> ['Müller', ',', '北', '京', '!'], then pieces of each
    >>> wp.encode_words(["EU", "rejects"])  # -> one list of piece ids per word

Google's code never composes (NFC) text: "e" + U+0301 stays two chars, so mBERT cased reads a
decomposed "é" as ["e", "##́"] and a precomposed one as ["é"]. HF's Rust tokenizer (transformers'
BertTokenizer, the reference of our tests) does the same. HF's legacy Python BertTokenizer departs
from Google twice: it NFC-composes the text, and it drops every C* char (unassigned, private use)
where Google drops only Cc and Cf. We follow Google in both.

Where Google's code and HF's Rust tokenizer differ, we follow Google, the word length limit aside
(tests/test_wordpiece.py pins each case; "x𫠠y" below holds U+2B820):
- uncased, a capital sigma ending a word: Python's str.lower() writes "ς", Rust lowercases char by
  char and writes "σ": "ΣΑΣ" -> "σας" (Google), "σασ" (Rust).
- private-use chars (U+E000-U+F8FF, planes 15-16, category Co): not Cc/Cf, so Google keeps them
  (in mBERT the word becomes [UNK]); Rust drops them: "a\\ue000b" -> "a\\ue000b" vs "ab".
- CJK Extension E/F: Google spaces out U+2B820-U+2CEAF, Rust's table starts at U+2B920, so
  U+2B820-U+2B91F stay inside their word: "x𫠠y" -> ["x", "𫠠", "y"] vs ["x𫠠y"].
- Unicode versions: Google asks the running Python's unicodedata (Unicode 14 in Python 3.11) which
  chars are controls, punctuation and accents; Rust carries older tables for those (and newer ones
  for lowercasing). Private use aside, only chars added or recategorised since Unicode 3.2 differ:
  "a⹒b" (U+2E52, punctuation since Unicode 13) is ["a", "⹒", "b"] for Google, one word for Rust.
- text that spells a special token ("[MASK]") is split like any text in Google's code; HF keeps it
  whole (ask it with split_special_tokens=True to compare).
- vocab.txt: Google strips each line (token.strip()), HF only its line end. mBERT's and MiniLM's
  vocabs have no line with surrounding spaces, so it changes nothing there.
- a word over 100 chars: Google's limit is 200, HF's 100; we keep HF's, see MAX_WORD_CHARS.
Not a difference: unassigned code points (U+0378) stay in both, and the word becomes [UNK].

For NER the sentence is already split into words (CoNLL tokens), each with its tag, so the
fast path is `encode_words`: every word is tokenized on its own and cached, since CoNLL words
repeat a lot (English train: 204k words, 24k distinct). Where we depart from both:
- a word that yields no piece at all (a lone soft hyphen, a zero-width space, a control char)
  becomes one [UNK] piece, so it keeps its tag; HF drops such a word from `word_ids`.
- `encode` adds no [CLS]/[SEP]: the caller builds its windows.
"""
import io
import json
import os
import unicodedata

# A basic token longer than this becomes one [UNK], never a truncated one. google-research/bert's
# WordpieceTokenizer says 200 (max_input_chars_per_word); an earlier revision said 100, as HF's
# port (Python and Rust) still does. We keep HF's 100 so that our pieces match its tokenizers.
MAX_WORD_CHARS = 100
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# tokenizer_config.json's names for them, in the order of SPECIALS (HF's special-token keys)
SPECIAL_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")

# CJK Unified Ideographs and their extensions/compatibility blocks, as in Google's
# _is_chinese_char. Hangul, hiragana and katakana are NOT here: those scripts separate words
# with spaces, so they go through WordPiece like Latin text does.
CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


# -----------------------------------------------------------------------------
# character classes, as in tokenization.py's _is_whitespace/_is_control/_is_punctuation

def is_space(c):
    # \t \n \r are control chars to Unicode, but text means them as spaces; NBSP, U+3000 etc. are Zs
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    # Cc (NUL, BEL, ESC, DEL, C1) and Cf (soft hyphen, zero-width joiner, BOM) are dropped, as in
    # Google's _is_control. Private use (Co), surrogates (Cs) and unassigned code points (Cn)
    # stay. (An earlier revision and HF's Python port drop every C* category.)
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf")


def is_punct(c):
    # all non-alphanumeric printable ASCII ("$", "^", "`" are symbols to Unicode, not
    # punctuation) plus Unicode P*. Other symbols ("€", "°", emoji) are not split off.
    cp = ord(c)
    return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
            or unicodedata.category(c)[0] == "P")


def is_cjk(c):
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in CJK)


def split_punct(t):
    """Each punctuation char becomes a token of its own: "U.S." -> ["U", ".", "S", "."]."""
    out, start = [], 0
    for i, c in enumerate(t):
        if is_punct(c):
            if start < i:
                out.append(t[start:i])
            out.append(c)
            start = i + 1
    if start < len(t):
        out.append(t[start:])
    return out


def strip_accents(t):
    """Decompose (NFD) and drop the combining marks (Mn): "Café" -> "Cafe", "ß" stays "ß"."""
    return "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")


# -----------------------------------------------------------------------------

class WordPiece:
    """vocab.txt's tokens (id = position) + casing -> pieces:
    `WordPiece(["[PAD]", "[UNK]", ...], do_lower_case=False)`. strip_accents=None follows
    do_lower_case (BERT's rule; HF's strip_accents key can force it)."""

    def __init__(self, tokens, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True,
                 source="vocab"):
        self.tokens = list(tokens)  # id -> token: one per line of vocab.txt
        # token -> id. A token listed twice maps to its last line, as Google's load_vocab does.
        self.vocab = {t: i for i, t in enumerate(self.tokens)}
        missing = [t for t in SPECIALS if t not in self.vocab]
        if missing:
            raise ValueError(f"{source}: no line {', '.join(missing)}; "
                             f"a BERT vocab.txt lists {' '.join(SPECIALS)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.vocab[t] for t in SPECIALS)
        self.lower = do_lower_case
        self.strip = do_lower_case if strip_accents is None else strip_accents
        self.cjk = tokenize_chinese_chars
        # no piece is longer than this, so the greedy match need not try longer substrings
        self.longest = max(len(t) for t in self.tokens)
        self.cache = {}  # word -> piece ids, for encode_words; grows with the distinct words seen

    @classmethod
    def from_pretrained(cls, name_or_dir):
        """A folder or Hub id with vocab.txt (+ tokenizer_config.json for the casing).

        Departure from HF: without tokenizer_config.json HF lowercases, which silently ruins a
        cased model (a local mBERT folder of config.json, vocab.txt and model.safetensors). We
        read the casing off the vocab instead: an uncased vocab was built from lowercased text,
        so a piece with an upper-case letter ("Berlin", "##K") means a cased model."""
        from bert import checkpoint_files  # here, not at the top: bert.py imports torch
        files = checkpoint_files(name_or_dir, ["vocab.txt"], optional=["tokenizer_config.json"])
        tokens = read_vocab(files["vocab.txt"])
        if "tokenizer_config.json" in files:
            cfg = read_config(files["tokenizer_config.json"])
        else:
            cfg = {"do_lower_case": not any(t.lower() != t for t in tokens if t not in SPECIALS)}
        return cls(tokens, source=files["vocab.txt"], **cfg)

    def save(self, folder):
        """Write vocab.txt and tokenizer_config.json into `folder` (made if need be), so that
        WordPiece.from_pretrained(folder) and HF's AutoTokenizer.from_pretrained(folder) both
        load this tokenizer, casing included. mBERT cased gets {"do_lower_case": false, ...}."""
        # read_vocab strips each line and ends one at \r too: such a token would come back changed
        assert not any(t != t.strip() or "\n" in t or "\r" in t for t in self.tokens), \
            "a token with a line break in it or a space around it cannot be a vocab.txt line"
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(t + "\n" for t in self.tokens))
        cfg = {"tokenizer_class": "BertTokenizer",  # what AutoTokenizer builds
               "do_lower_case": self.lower, "strip_accents": self.strip,
               "tokenize_chinese_chars": self.cjk, **dict(zip(SPECIAL_KEYS, SPECIALS))}
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")

    def __len__(self):
        return len(self.tokens)

    # --- BasicTokenizer --------------------------------------------------------

    def basic(self, text):
        """Text -> basic tokens; uncased, "Héllo, 北京!" -> ["hello", ",", "北", "京", "!"]."""
        if text.isascii():  # shortcut, same answer: Zs, P* beyond ASCII and CJK add nothing
            return self.basic_ascii(text)
        # drop U+FFFD and control chars (NUL is one); any whitespace char becomes a plain space
        text = "".join(" " if is_space(c) else c for c in text
                       if c != "\ufffd" and not is_control(c))
        if self.cjk:  # Google added this for the multilingual and Chinese models (Nov 2018)
            text = "".join(f" {c} " if is_cjk(c) else c for c in text)
        out = []
        # str.split() also splits on U+2028/U+2029 (Zl, Zp), which the cleaning above kept
        for t in text.split():
            if self.lower:
                # per token, as Google does: Python's final-sigma rule sees the token only
                t = t.lower()
            if self.strip:
                t = strip_accents(t)
            out += split_punct(t)
        return out

    def basic_ascii(self, text):
        """`basic` for ASCII text, where the classes are simple: the controls are 0-31 (less tab,
        LF and CR, which are spaces) and 127, every printable non-alphanumeric is punctuation."""
        if not text.isprintable():
            text = "".join(" " if c in "\t\n\r" else c for c in text
                           if c.isprintable() or c in "\t\n\r")
        if self.lower:
            text = text.lower()
        return [p for t in text.split() for p in ([t] if t.isalnum() else split_punct(t))]

    # --- WordpieceTokenizer ----------------------------------------------------

    def pieces(self, token):
        """Greedy longest-match-first piece ids of one basic token, [UNK] if it can't be covered.

        With "un", "##aff", "##able" in the vocab: "unaffable" -> ids of ["un", "##aff", "##able"].
        Greedy, not optimal: with "una", "un", "##aff" (no "##ff", "##f") the token "unaff" is
        [UNK], since "una" is taken first and "ff" is left over."""
        n = len(token)
        if n > MAX_WORD_CHARS:
            return [self.unk_id]  # HF's limit, see MAX_WORD_CHARS (it counts basic tokens' chars)
        ids, start = [], 0
        while start < n:
            prefix = "##" if start > 0 else ""  # a piece inside a token is spelled "##piece"
            for end in range(min(n, start + self.longest), start, -1):
                i = self.vocab.get(prefix + token[start:end])
                if i is not None:
                    break
            else:
                return [self.unk_id]  # nothing fits at `start`: the whole token is [UNK]
            ids.append(i)
            start = end
        return ids

    # --- public API ------------------------------------------------------------

    def encode(self, text):
        """Piece ids of a text, no [CLS]/[SEP]: "Hello, world" -> [7592, 1010, 2088] (MiniLM)."""
        return [i for t in self.basic(text) for i in self.pieces(t)]

    def tokenize(self, text):
        """Pieces of a text: "unaffable Köln" -> ["una", "##ffa", "##ble", "koln"] (MiniLM)."""
        return self.convert_ids_to_tokens(self.encode(text))

    def encode_words(self, words):
        """Piece ids per word (CoNLL token): ["EU", "rejects"] -> [[7327], [19164]] (MiniLM);
        len(result) == len(words) and no list is empty."""
        cache, out = self.cache, []
        for w in words:
            ids = cache.get(w)
            if ids is None:
                # Departure from HF (see the top): a word with no pieces, e.g. a lone combining
                # accent when uncased, stays as one [UNK] and keeps its tag.
                ids = cache[w] = self.encode(w) or [self.unk_id]
            out.append(ids[:])  # a copy: a caller that edits its lists must not edit the cache
        return out

    def convert_ids_to_tokens(self, ids):
        return [self.tokens[i] for i in ids]


def read_vocab(path):
    """vocab.txt -> tokens, one per line, id = line number - 1. Each line is stripped, as Google's
    load_vocab does (HF strips the line end only); \\n, \\r\\n and \\r end a line, as for HF."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 (byte {data[e.start]:#04x}); "
                         "a vocab.txt is UTF-8 text, one token a line") from None
    return [line.strip() for line in io.StringIO(text, newline=None)]


def read_config(path):
    """The casing keys of HF's tokenizer_config.json: mBERT cased has {"do_lower_case": false}.
    An absent key keeps HF's default (do_lower_case true, strip_accents null i.e. follow
    do_lower_case, tokenize_chinese_chars true); keys about other things are ignored."""
    with open(path, encoding="utf-8") as f:
        try:
            cfg = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if cfg.get("do_basic_tokenize", True) is not True or cfg.get("never_split"):
        raise ValueError(f"{path}: do_basic_tokenize=false and never_split are not supported; "
                         "remove them")
    keys = ("do_lower_case", "strip_accents", "tokenize_chinese_chars")
    kw = {key: cfg[key] for key in keys if key in cfg}
    for key, v in kw.items():
        null_ok = key == "strip_accents"
        if not (isinstance(v, bool) or v is None and null_ok):
            raise ValueError(f"{path}: {key} must be true or false{' or null' * null_ok}, "
                             f"not {v!r}")
    return kw

