"""BERT, the encoder the paper fine-tunes (paper Sec 2.3, 3.2; Devlin et al. 2019, Sec 3).

Mirrors google-research/bert modeling.py: embeddings (word + position + segment), L post-LN
transformer layers, the masked-LM head of LM fine-tuning (paper Sec 4.2, Tables 5-6) and the tagger,
a linear layer over each piece (paper Sec 3.2, Figure 1).

Checkpoints are Hub folders in HF's layout, config.json + model.safetensors. `from_pretrained`
reads any BERT (e.g. mBERT, bert-base-multilingual-cased: L=12, H=768, A=12) into our `Bert`;
`token_classifier_from_pretrained` reads a BertForTokenClassification (dslim/bert-base-NER, or a
tagger we saved) into our `TokenClassifier`; `save_pretrained` writes either as HF does
(BertForTokenClassification, BertForMaskedLM, BertModel), for transformers' Auto classes too.

Shape legend: B batch, T sequence length (pieces), H hidden size, A attention heads,
D = H/A per-head size, V vocabulary size, F intermediate (feed-forward) size.
"""
import contextlib
import json
import math
import os
import re
import socket
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class BertConfig:
    vocab_size: int = 119547                 # mBERT config.json
    hidden_size: int = 768                   # H, BERT-base (Devlin et al. Sec 3)
    num_hidden_layers: int = 12              # L
    num_attention_heads: int = 12            # A
    intermediate_size: int = 3072            # F = 4H
    max_position_embeddings: int = 512       # BERT pre-training length
    type_vocab_size: int = 2                 # segments A/B
    layer_norm_eps: float = 1e-12            # google-research/bert modeling.py
    hidden_dropout_prob: float = 0.1         # Devlin et al. App. A.2
    attention_probs_dropout_prob: float = 0.1
    hidden_act: str = "gelu"                 # exact erf GELU, as BERT was trained

    @classmethod
    def from_json(cls, path):
        """Keep the keys we model; config.json carries many others (model_type, id2label...)."""
        raw = read_json(path)
        for f in fields(cls):  # each field of its type and positive: a traceback in torch else
            v = raw.get(f.name, f.default)
            kinds = (int, float) if f.type is float else f.type  # 1 is a float here; True no int
            if isinstance(v, bool) or not isinstance(v, kinds):
                raise ValueError(f"{path}: {f.name} is {v!r}, expected {f.type.__name__}")
            dropout = "dropout" in f.name
            if f.type is not str and not (0 <= v < 1 if dropout else 0 < v < math.inf):
                raise ValueError(f"{path}: {f.name} is {v!r}, expected "
                                 f"{'a probability below 1' if dropout else 'a positive number'}")
        cfg = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(f"{path}: hidden_size {cfg.hidden_size} does not split into "
                             f"num_attention_heads {cfg.num_attention_heads} heads")
        if cfg.hidden_act != "gelu":
            raise ValueError(f"{path}: hidden_act={cfg.hidden_act!r}; only 'gelu' is implemented")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute positions are implemented (BERT Sec 3)")
        return cfg


# ---------------------------------------------------------------------------------------------
# The model: six lines of the paper's Figure 1 in five small modules.

class Embeddings(nn.Module):
    """Input representation = word + position + segment embedding, then LayerNorm (BERT Sec 3)."""

    def __init__(self, cfg):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.pos = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.seg = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)  # segment (token type) A/B
        self.ln = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, ids, types):
        T = ids.shape[1]
        if T > self.pos.num_embeddings:
            raise ValueError(f"{T} pieces exceed the model's {self.pos.num_embeddings} positions; "
                             f"lower --max-len (conll.py splits long sentences into windows)")
        x = self.word(ids) + self.pos.weight[:T] + self.seg(types)  # (B, T, H)
        return self.drop(self.ln(x))


class Layer(nn.Module):
    """One post-LN layer (Vaswani et al. Sec 3.1): x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, cfg):
        super().__init__()
        H = cfg.hidden_size
        self.A = cfg.num_attention_heads
        self.qkv = nn.Linear(H, 3 * H)  # query, key, value in one matmul (checkpoints store three)
        self.proj = nn.Linear(H, H)
        self.ln1 = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(H, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, H)
        self.ln2 = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.p_attn = cfg.attention_probs_dropout_prob
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, mask):
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.A, -1).permute(2, 0, 3, 1, 4)  # 3 x (B, A, T, D)
        # softmax(q k^T / sqrt(D)) v, pad keys masked; dropout on the attention probs as BERT does
        p = self.p_attn if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        a = a.transpose(1, 2).reshape(B, T, H)  # (B, T, H): heads concatenated
        x = self.ln1(x + self.drop(self.proj(a)))
        h = F.gelu(self.fc1(x))  # (B, T, F), exact erf GELU
        return self.ln2(x + self.drop(self.fc2(h)))


class MLMHead(nn.Module):
    """Masked-LM head (BERT Sec 3.1 Task #1), used by LM fine-tuning (Tables 5-6): dense + GELU +
    LayerNorm, then vocabulary scores through the word embedding matrix plus an output bias: tied
    as HF and google-research/bert's run_pretraining.py (get_masked_lm_output) tie them."""

    def __init__(self, cfg, word_emb):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.ln = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.decoder.weight = word_emb.weight  # tied: the same Parameter, not a copy

    def forward(self, h):
        return self.decoder(self.ln(F.gelu(self.dense(h))))  # (B, T, V)


class Bert(nn.Module):
    """The encoder: `Bert(cfg)(ids, mask, types)` -> the last layer's hidden states (B, T, H).
    `self.mlm` is the masked-LM head when the checkpoint has one (None otherwise)."""

    def __init__(self, cfg, mlm=False):
        super().__init__()
        self.cfg = cfg
        self.emb = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.mlm = MLMHead(cfg, self.emb.word) if mlm else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # one segment: the paper tags sentences
        mask = attention_mask  # (B, T): 1 for a piece, 0 for padding
        if mask is not None:
            mask = mask.bool()[:, None, None, :]  # (B, 1, 1, T): the same for every head and query
        x = self.emb(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask)
        return x  # (B, T, H)


class TokenClassifier(nn.Module):
    """BERT for NER (paper Sec 3.2, Figure 1; BERT Sec 5.3): a linear layer over each piece's last
    hidden state. Only a word's first piece is scored in the loss; conll.py marks which.
    `out` is HF BertForTokenClassification's `classifier` (dropout, then one Linear, as here)."""

    def __init__(self, bert, num_labels):
        super().__init__()
        self.bert = bert
        self.drop = nn.Dropout(bert.cfg.hidden_dropout_prob)
        self.out = nn.Linear(bert.cfg.hidden_size, num_labels)
        nn.init.normal_(self.out.weight, std=0.02)  # BERT's initializer_range
        nn.init.zeros_(self.out.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        h = self.bert(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        return self.out(self.drop(h))  # (B, T, labels)


# ---------------------------------------------------------------------------------------------
# Loading Hub checkpoints.

HINT = ("Give a local folder holding config.json, vocab.txt and model.safetensors in its place: "
        "--model DIR (train, grid, reproduce; make: MODEL=DIR), or predict's first argument")


def checkpoint_files(name_or_dir, names, optional=()):
    """Local paths of `names` (plus those of `optional` that exist) for a folder or a Hub id:
    "./my-bert" -> that folder's files; "bert-base-multilingual-cased" -> files fetched with
    huggingface_hub into its cache (HF_HOME and HF_HUB_OFFLINE respected). Only named files are
    fetched: never the .bin/.h5/.msgpack copies of the weights."""
    if os.path.isdir(name_or_dir):
        paths = {n: os.path.join(name_or_dir, n) for n in (*names, *optional)}
        if missing := [n for n in names if not os.path.isfile(paths[n])]:
            raise FileNotFoundError(f"{name_or_dir}: missing {', '.join(missing)} (a BERT folder "
                                    f"needs config.json, vocab.txt and model.safetensors)")
        return {n: p for n, p in paths.items() if os.path.isfile(p)}
    if name_or_dir.startswith((".", "/", "~")) or name_or_dir.count("/") > 1:
        raise FileNotFoundError(f"{name_or_dir}: no such folder")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    # Offline, huggingface_hub retries for about 23 s (printing "Retrying") before it gives up:
    # where the Hub's name does not resolve (a proxy resolves it itself), ask its cache alone.
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        offline = not urllib.request.getproxies().keys() & {"https", "all"} \
            and not socket.getaddrinfo(host, 443)
    except OSError:
        offline = True
    paths = {}
    for n in (*names, *optional):
        try:
            paths[n] = hf_hub_download(name_or_dir, n, local_files_only=offline)
        except LocalEntryNotFoundError as e:  # offline (or HF_HUB_OFFLINE=1) and not in the cache
            raise OSError(f"{name_or_dir!r}: {n} is not in the Hub cache and the Hub is "
                          f"unreachable. {HINT}") from e
        except EntryNotFoundError:
            if n in names:
                raise FileNotFoundError(f"Hub model {name_or_dir!r} has no {n}") from None
        except Exception as e:  # offline, unknown id, gated repo: say how to go on
            raise OSError(f"could not fetch {n} of {name_or_dir!r} from the Hub "
                          f"({type(e).__name__}: {e}). Offline or a typo? {HINT}") from e
    return paths


# The masked-LM head's keys: paper Sec 4.2's masked-LM stage trains it.
MLM_HEAD = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias")
# Checkpoint keys left unused, by name. The pooler and NSP head serve BERT's [CLS] tasks, not NER;
# the decoder weight is the word embedding (tied) and the decoder bias aliases cls.predictions.bias.
# from_pretrained ignores a tagger's classifier, and an MLM head unless it is whole: HF's BertModel
# and BertForTokenClassification load a partial one (cls.predictions.bias alone, say) unused, and
# check_mlm_head refuses it before the masked-LM stage trains it. A tagger never loads the head.
IGNORED = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids",
           "cls.seq_relationship.weight", "cls.seq_relationship.bias",
           "cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
           "classifier.weight", "classifier.bias", *MLM_HEAD)


def key_table(cfg, mlm, tagger=False):
    """Our parameter name -> the HF key(s) it is made of (several are concatenated along dim 0).
    BERT's Linears store (out, in) like nn.Linear, so nothing is transposed (unlike GPT-2's
    Conv1D). With `tagger`, our names are TokenClassifier's: `bert.` + the encoder's, and `out.`."""
    t = {"emb.word.weight": ["embeddings.word_embeddings.weight"],
         "emb.pos.weight": ["embeddings.position_embeddings.weight"],
         "emb.seg.weight": ["embeddings.token_type_embeddings.weight"]}
    pairs = [("emb.ln", "embeddings.LayerNorm")]
    for i in range(cfg.num_hidden_layers):
        ours, hf = f"layers.{i}", f"encoder.layer.{i}"
        for p in ("weight", "bias"):  # checkpoints store the query, key and value apart
            qkv = ("query", "key", "value")
            t[f"{ours}.qkv.{p}"] = [f"{hf}.attention.self.{m}.{p}" for m in qkv]
        pairs += [(f"{ours}.proj", f"{hf}.attention.output.dense"),
                  (f"{ours}.ln1", f"{hf}.attention.output.LayerNorm"),
                  (f"{ours}.fc1", f"{hf}.intermediate.dense"),
                  (f"{ours}.fc2", f"{hf}.output.dense"),
                  (f"{ours}.ln2", f"{hf}.output.LayerNorm")]
    for ours, hf in pairs:
        for p in ("weight", "bias"):
            t[f"{ours}.{p}"] = [f"{hf}.{p}"]
    if mlm:
        names = ("mlm.dense.weight", "mlm.dense.bias", "mlm.ln.weight", "mlm.ln.bias",
                 "mlm.decoder.bias")
        t |= {name: [hf] for name, hf in zip(names, MLM_HEAD)}
    if tagger:
        t = {"bert." + k: v for k, v in t.items()}
        t |= {"out.weight": ["classifier.weight"], "out.bias": ["classifier.bias"]}
    return t


def hf_name(key):
    """Normalise a checkpoint key: drop the `bert.` prefix of BertFor* checkpoints and rename TF-era
    LayerNorm.gamma/beta (bert-base-cased still ships them) to weight/bias."""
    key = key[len("bert."):] if key.startswith("bert.") else key
    key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)


def read_safetensors(path):
    from safetensors.torch import load_file
    try:
        return {hf_name(k): v for k, v in load_file(path).items()}
    except Exception as e:  # safetensors raises its own error type for truncated / garbled files
        raise ValueError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e}); "
                         f"re-download it or point --model at another copy") from e


def check_mlm_head(name_or_dir):
    """The masked-LM stage (paper Sec 4.2) trains the checkpoint's own MLM head: a checkpoint with
    none or part of one (see IGNORED) is an error naming what is missing. No tensor is read."""
    from safetensors import safe_open
    path = checkpoint_files(name_or_dir, ["model.safetensors"])["model.safetensors"]
    with safe_open(path, "pt") as f:  # the output bias may be stored under the decoder's name
        keys = {hf_name(k).replace("decoder.bias", "bias") for k in f.keys()}
    if missing := [k for k in MLM_HEAD if k not in keys]:
        raise ValueError(f"{name_or_dir}: the checkpoint has no masked-LM head, or only part of "
                         f"one (missing {', '.join(missing)}), for the masked-LM stage "
                         f"(--lm_epochs); use one that has it whole (mBERT does)")


def read_json(path):
    """A config.json as a dict; a damaged one (cut off, not an object) is an error naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); restore or re-download it") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    return raw


def check_inputs(name_or_dir, max_len=None, pieces=None):
    """What the data will hand the model must fit it, found now, not at the first long window or
    rare piece after an epoch: windows of max_len pieces need as many positions, and a vocab.txt
    of `pieces` lines must index exactly the config's vocab_size rows of the word embeddings
    (longer: an index past the matrix; shorter: pieces that mean other words)."""
    files = checkpoint_files(name_or_dir, ["config.json"], optional=["vocab.txt"])
    cfg = BertConfig.from_json(files["config.json"])
    if max_len is not None and max_len > cfg.max_position_embeddings:
        raise ValueError(f"--max_len={max_len}: {name_or_dir} has {cfg.max_position_embeddings} "
                         f"positions; pass --max_len {cfg.max_position_embeddings} or less")
    if pieces is not None and pieces != cfg.vocab_size:
        vocab = files.get("vocab.txt", "its vocab.txt")
        raise ValueError(f"{vocab} has {pieces} pieces but {files['config.json']} says "
                         f"vocab_size {cfg.vocab_size}: the vocabulary is not the checkpoint's; "
                         f"put the model's own vocab.txt beside it")


def from_pretrained(name_or_dir):
    """Our `Bert` (+ MLM head when the checkpoint has one) from a folder or a Hub id
    ("bert-base-multilingual-cased"). A tagger's classifier is ignored: see IGNORED."""
    return load_checkpoint(name_or_dir, tagger=False)[0]


def token_classifier_from_pretrained(name_or_dir):
    """-> (TokenClassifier, config.json as a dict) from a BertForTokenClassification checkpoint,
    ours or HF's ("dslim/bert-base-NER"). id2label is returned as stored: {"0": "O", ...}."""
    return load_checkpoint(name_or_dir, tagger=True)


def load_checkpoint(name_or_dir, tagger):
    """The one loader: -> (our Bert, or TokenClassifier if `tagger`; config.json as a dict).
    The model is built on the meta device and the loaded tensors are assigned into it, so the
    weights are held once in memory, not twice. Every parameter must come from the checkpoint: a
    missing or unexpected tensor is an error listing them all, never a silently random weight."""
    files = checkpoint_files(name_or_dir, ["config.json", "model.safetensors"])
    path = files["model.safetensors"]
    cfg = BertConfig.from_json(files["config.json"])
    raw = read_json(files["config.json"])
    sd = read_safetensors(path)
    # Tied tensors are stored once, under either name, depending on how a checkpoint was converted.
    for kept, alias in (("embeddings.word_embeddings.weight", "cls.predictions.decoder.weight"),
                        ("cls.predictions.bias", "cls.predictions.decoder.bias")):
        if kept not in sd and alias in sd:
            sd[kept] = sd.pop(alias)
        elif alias in sd and not torch.equal(sd[kept], sd[alias]):  # never a weight dropped
            raise ValueError(f"{path}: {alias} differs from {kept}: an untied masked-LM decoder "
                             f"(tie_word_embeddings false); BERT ties them, and so does MLMHead")
    if tagger and "classifier.weight" not in sd:
        raise ValueError(f"{path}: no classifier.weight: this is not a token-classification "
                         f"checkpoint (from_pretrained loads its encoder; add a TokenClassifier)")
    mlm = not tagger and set(MLM_HEAD) <= sd.keys()  # whole, else left out: see MLM_HEAD
    table = key_table(cfg, mlm, tagger)
    used = {k for keys in table.values() for k in keys}
    missing = sorted(used - sd.keys())
    unexpected = sorted(sd.keys() - used - set(IGNORED))
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match a BERT of {files['config.json']}: "
                         f"missing {missing or 'none'}; unexpected {unexpected or 'none'}")
    ours = {name: sd.pop(keys[0]) if len(keys) == 1 else torch.cat([sd.pop(k) for k in keys])
            for name, keys in table.items()}
    if mlm:
        ours["mlm.decoder.weight"] = ours["emb.word.weight"]  # tied (see MLMHead): two names
    with torch.device("meta"):
        model = Bert(cfg, mlm=mlm)
        if tagger:  # HF sizes the classifier by id2label: a mismatch fails the shape check below
            model = TokenClassifier(model, len(raw.get("id2label") or ours["out.bias"]))
    expect = model.state_dict()
    assert ours.keys() == expect.keys(), f"key table out of date: {sorted(ours.keys() ^ expect)}"
    for k, v in ours.items():
        if v.shape != expect[k].shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, "
                             f"config.json implies {tuple(expect[k].shape)}")
    model.load_state_dict({k: v.float() for k, v in ours.items()}, assign=True)
    if mlm:
        model.mlm.decoder.weight = model.emb.word.weight  # assign=True replaced it: tie again
    return model, raw


def save_pretrained(model, folder, config_extra=None):
    """Write our Bert or TokenClassifier plainly into `folder` (made if missing) as a Hub checkpoint
    that the loaders above and HF read: config.json + model.safetensors under HF key names,
    query/key/value split again. TokenClassifier -> BertForTokenClassification (`bert.` keys +
    classifier.*; an MLM head is dropped), Bert -> BertForMaskedLM with its MLM head, else BertModel
    (bare keys, no pooler). `config_extra` joins config.json: {"id2label": {"0": "O", ...}, ...}.
    A caller that needs the folder whole writes a temporary one and renames it, or records last."""
    from safetensors.torch import save
    tagger = isinstance(model, TokenClassifier)
    cfg = (model.bert if tagger else model).cfg
    mlm = not tagger and model.mlm is not None
    arch = "BertForTokenClassification" if tagger else "BertForMaskedLM" if mlm else "BertModel"
    prefix = "" if arch == "BertModel" else "bert."  # HF nests the encoder in its heads' models
    sd, out = model.state_dict(), {}
    for name, keys in key_table(cfg, mlm, tagger).items():
        parts = sd[name].split(cfg.hidden_size) if len(keys) == 3 else [sd[name]]
        for k, part in zip(keys, parts):
            k = k if k.startswith(("cls.", "classifier.")) else prefix + k  # heads: no prefix
            out[k] = part.detach().cpu().contiguous()  # files hold contiguous CPU tensors
    config = {**asdict(cfg), "model_type": "bert", "architectures": [arch]}
    extra = dict(config_extra or {})
    if clash := sorted(extra.keys() & config.keys()):
        raise ValueError(f"config_extra must not set {clash}: save_pretrained writes them")
    if tagger:  # HF sizes the classifier by id2label, so it must name every output
        n, names = model.out.out_features, extra.get("id2label", {})
        if len(names) != n:
            raise ValueError(f"config_extra needs an id2label naming all {n} classifier outputs "
                             f"({{'0': 'O', ...}}), not {len(names)}")
        extra.setdefault("label2id", {tag: int(i) for i, tag in names.items()})
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({**config, **extra}, indent=2) + "\n")  # ASCII: \u escapes, any locale
    # Python writes the bytes, so that a full disk is an OSError as callers expect (save_file raises
    # safetensors' own type); the price: the file's size in memory while it is written.
    # {"format": "pt"} as in HF's own files: older transformers releases refuse a file without it.
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(save(out, metadata={"format": "pt"}))


# ---------------------------------------------------------------------------------------------
# The one place that picks the hardware.

def pick_device():
    """CUDA when there is one (trained under bf16 autocast), else the CPU in fp32."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device):
    """bf16 autocast on CUDA (weights and optimizer state stay fp32); a no-op on the CPU."""
    if device.type == "cuda":  # no cast cache: a CUDA graph must not keep casts across replays
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()
