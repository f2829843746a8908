"""BERT, the encoder the paper fine-tunes (paper Sec 2.3, 3.2; Devlin et al. 2019, Sec 3).

Mirrors google-research/bert modeling.py: embeddings (word + position + segment), L post-LN
layers, the masked-LM head of LM fine-tuning (paper Sec 4.2, Tables 5-6) and the tagger, a linear
layer over each piece (paper Sec 3.2, Figure 1).

Checkpoints are Hub folders in HF's layout (config.json + model.safetensors): `from_pretrained`
reads any BERT (mBERT: L=12, H=768, A=12) into our `Bert`, or with `tagger=True` a token classifier
(dslim/bert-base-NER, a tagger we saved) into our `TokenClassifier`; `save_pretrained` writes both.

Shape legend: B batch, T sequence length (pieces), H hidden size, A attention heads,
D = H/A per-head size, V vocabulary size, F intermediate (feed-forward) size.
"""
import json
import os
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
        cfg = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        # Refuse what loads without a shape error yet computes another function than BERT's.
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

    def forward(self, ids, types=None):  # no types: one segment (A), as the paper tags sentences
        seg = self.seg.weight[0] if types is None else self.seg(types)  # (H) or (B, T, H)
        x = self.word(ids) + self.pos.weight[:ids.shape[1]] + seg  # (B, T, H)
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
    """Masked-LM head (BERT Sec 3.1 Task #1) of LM fine-tuning (Tables 5-6): dense + GELU + LN, then
    scores through the word embeddings (tied, as in run_pretraining.py's get_masked_lm_output)."""

    def __init__(self, cfg, word_emb):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.ln = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.decoder.weight = word_emb.weight  # tied: the same Parameter, not a copy

    def forward(self, h):
        return self.decoder(self.ln(F.gelu(self.dense(h))))  # (B, T, V)


class Bert(nn.Module):
    """The encoder: `Bert(cfg)(ids, mask, types)` -> hidden states (B, T, H); `mlm`: head or None"""

    def __init__(self, cfg, mlm=False):
        super().__init__()
        self.cfg = cfg
        self.emb = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.mlm = MLMHead(cfg, self.emb.word) if mlm else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        # (B, T), 1 for a piece and 0 for padding -> (B, 1, 1, T): alike for every head and query
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        x = self.emb(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask)
        return x  # (B, T, H)


class TokenClassifier(nn.Module):
    """BERT for NER (paper Sec 3.2, Figure 1; BERT Sec 5.3): a linear layer (HF's `classifier`) over
    each piece's last hidden state; only a word's first piece is scored (conll.py marks it)."""

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
    """Local paths of `names` (and those of `optional` that exist) in a folder, or for a Hub id
    ("bert-base-multilingual-cased") fetched into huggingface_hub's cache, never .bin/.h5 copies."""
    if os.path.isdir(name_or_dir):
        paths = {n: os.path.join(name_or_dir, n) for n in (*names, *optional)}
        if missing := [n for n in names if not os.path.isfile(paths[n])]:
            raise FileNotFoundError(f"{name_or_dir}: missing {', '.join(missing)} (a BERT folder "
                                    f"needs config.json, vocab.txt and model.safetensors)")
        return {n: p for n, p in paths.items() if os.path.isfile(p)}
    if name_or_dir.startswith((".", "/", "~")) or name_or_dir.count("/") > 1:
        raise FileNotFoundError(f"{name_or_dir}: no such folder")
    from huggingface_hub import errors, hf_hub_download
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
        except errors.LocalEntryNotFoundError as e:  # offline or HF_HUB_OFFLINE=1: not cached
            raise OSError(f"{name_or_dir!r}: {n} is not in the Hub cache and the Hub is "
                          f"unreachable. {HINT}") from e
        except errors.EntryNotFoundError:
            if n in names:
                raise FileNotFoundError(f"Hub model {name_or_dir!r} has no {n}") from None
        except Exception as e:  # a failed request, unknown id, gated repo: say how to go on
            raise OSError(f"could not fetch {n} of {name_or_dir!r} from the Hub "
                          f"({type(e).__name__}: {e}). Offline or a typo? {HINT}") from e
    return paths


# The masked-LM head's keys: paper Sec 4.2's masked-LM stage trains it.
MLM_HEAD = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias")
# Checkpoint keys left unused, by name: the pooler and NSP head (BERT's [CLS] tasks, not NER), the
# tied decoder's second names, a tagger's classifier in an encoder, and an MLM head unless whole
# (HF's BertModel loads part of one unused; check_mlm_head refuses it). Taggers never load one.
IGNORED = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids",
           "cls.seq_relationship.weight", "cls.seq_relationship.bias",
           "cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
           "classifier.weight", "classifier.bias", *MLM_HEAD)
# Layer's modules -> where HF's BertLayer keeps them (its q/k/v in key_table).
LAYER = {"proj": "attention.output.dense", "ln1": "attention.output.LayerNorm",
         "fc1": "intermediate.dense", "fc2": "output.dense", "ln2": "output.LayerNorm"}


def key_table(cfg, mlm, tagger=False):
    """Our parameter name -> the HF key(s) it is made of (several are concatenated along dim 0).
    BERT's Linears store (out, in) like nn.Linear, so nothing is transposed (unlike GPT-2's
    Conv1D). With `tagger`, our names are TokenClassifier's: `bert.` + the encoder's, and `out.`."""
    t = {f"emb.{ours}.weight": [f"embeddings.{hf}_embeddings.weight"]
         for ours, hf in (("word", "word"), ("pos", "position"), ("seg", "token_type"))}
    pairs = [("emb.ln", "embeddings.LayerNorm")]
    for i in range(cfg.num_hidden_layers):
        ours, hf = f"layers.{i}", f"encoder.layer.{i}"
        qkv = [f"{hf}.attention.self.{m}" for m in ("query", "key", "value")]  # stored apart
        t |= {f"{ours}.qkv.{p}": [f"{k}.{p}" for k in qkv] for p in ("weight", "bias")}
        pairs += [(f"{ours}.{a}", f"{hf}.{b}") for a, b in LAYER.items()]
    if mlm:  # MLM_HEAD's keys
        pairs += [("mlm.dense", "cls.predictions.transform.dense"),
                  ("mlm.ln", "cls.predictions.transform.LayerNorm")]
        t["mlm.decoder.bias"] = ["cls.predictions.bias"]
    t |= {f"{ours}.{p}": [f"{hf}.{p}"] for ours, hf in pairs for p in ("weight", "bias")}
    if tagger:
        t = {"bert." + k: v for k, v in t.items()}
        t |= {"out.weight": ["classifier.weight"], "out.bias": ["classifier.bias"]}
    return t


def hf_name(key):
    """Normalise a checkpoint key: drop the `bert.` prefix of BertFor* checkpoints and rename TF-era
    LayerNorm.gamma/beta (bert-base-cased still ships them) to weight/bias."""
    key = key.removeprefix("bert.").replace("LayerNorm.gamma", "LayerNorm.weight")
    return key.replace("LayerNorm.beta", "LayerNorm.bias")


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
    """What the data will hand the model must fit it, found now, not after an epoch: windows of
    max_len pieces need as many positions, and a vocab.txt of `pieces` lines must index exactly
    the config's vocab_size word embeddings (longer: past the matrix; shorter: wrong words)."""
    cfg = BertConfig.from_json(checkpoint_files(name_or_dir, ["config.json"])["config.json"])
    if max_len is not None and max_len > cfg.max_position_embeddings:
        raise ValueError(f"--max_len={max_len}: {name_or_dir} has {cfg.max_position_embeddings} "
                         f"positions; pass --max_len {cfg.max_position_embeddings} or less")
    if pieces is not None and pieces != cfg.vocab_size:
        raise ValueError(f"{name_or_dir}: vocab.txt has {pieces} pieces but config.json says "
                         f"vocab_size {cfg.vocab_size}; put the model's own vocab.txt beside it")


def from_pretrained(name_or_dir, tagger=False):
    """Our `Bert` (+ MLM head if the checkpoint has it whole) from a folder or a Hub id; with
    `tagger`, (TokenClassifier, config.json as a dict: id2label as stored, {"0": "O", ...}). Built
    on the meta device and assigned, the weights are held once. Every parameter comes from the
    checkpoint: missing or unexpected tensors are an error naming all, never a random weight."""
    from safetensors.torch import load_file
    files = checkpoint_files(name_or_dir, ["config.json", "model.safetensors"])
    path = files["model.safetensors"]
    cfg = BertConfig.from_json(files["config.json"])
    raw = read_json(files["config.json"])
    try:
        sd = {hf_name(k): v for k, v in load_file(path).items()}
    except Exception as e:  # safetensors raises its own error type for truncated / garbled files
        raise ValueError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e}); "
                         f"re-download it or point --model at another copy") from e
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
    return (model, raw) if tagger else model


def token_classifier_from_pretrained(name_or_dir):
    return from_pretrained(name_or_dir, tagger=True)


def save_pretrained(model, folder, config_extra=None):
    """Write a Hub checkpoint into `folder` (made if missing): config.json + model.safetensors
    under HF's key names, q/k/v split again. TokenClassifier -> BertForTokenClassification, Bert ->
    BertForMaskedLM with its MLM head, else BertModel (bare keys, no pooler). `config_extra` joins
    config.json: a tagger's id2label (HF sizes the classifier by it) and label2id, our own keys."""
    from safetensors.torch import save
    tagger = isinstance(model, TokenClassifier)
    cfg = (model.bert if tagger else model).cfg
    mlm = not tagger and model.mlm is not None
    arch = "BertForTokenClassification" if tagger else "BertForMaskedLM" if mlm else "BertModel"
    sd, out = model.state_dict(), {}
    for name, keys in key_table(cfg, mlm, tagger).items():
        parts = sd[name].split(cfg.hidden_size) if len(keys) == 3 else [sd[name]]
        for k, part in zip(keys, parts):
            # HF nests the encoder under `bert.` in its models with a head, not the head itself
            k = k if k.startswith(("cls.", "classifier.")) or arch == "BertModel" else "bert." + k
            out[k] = part.detach().cpu().contiguous()  # files hold contiguous CPU tensors
    config = {**asdict(cfg), "model_type": "bert", "architectures": [arch], **(config_extra or {})}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2) + "\n")  # ASCII: \u escapes, any locale
    # Python writes the bytes, so a full disk is an OSError (save_file raises safetensors' own
    # type). {"format": "pt"} as in HF's files: older transformers refuse a file without it.
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(save(out, metadata={"format": "pt"}))


# ---------------------------------------------------------------------------------------------
# The one place that picks the hardware.

def pick_device():
    """CUDA when there is one (trained under bf16 autocast), else the CPU in fp32."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device):
    """bf16 autocast on CUDA (weights and optimizer state stay fp32); off on the CPU. No cast
    cache: a CUDA graph must not keep casts across replays."""
    on = device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on, cache_enabled=False)
