"""BERT encoder (Devlin et al. 2019, Sec 3; paper Sec 2.3/3.2) — work in progress."""
import os


def checkpoint_files(name_or_dir, names, optional=()):
    """Local paths of `names` (+ any of `optional` that exist) for a folder or a Hub id.

    "bert-base-multilingual-cased" -> files fetched with huggingface_hub into its cache
    (HF_HOME / HF_HUB_OFFLINE respected); "./my-bert" -> that folder's files.
    """
    if os.path.isdir(name_or_dir):
        paths = {n: os.path.join(name_or_dir, n) for n in (*names, *optional)}
        missing = [n for n in names if not os.path.isfile(paths[n])]
        if missing:
            raise FileNotFoundError(f"{name_or_dir}: missing {', '.join(missing)} "
                                    f"(a BERT folder needs config.json, vocab.txt, model.safetensors)")
        return {n: p for n, p in paths.items() if os.path.isfile(p)}
    if os.path.sep in name_or_dir.strip("/") and name_or_dir.count("/") > 1 or name_or_dir.startswith((".", "/")):
        raise FileNotFoundError(f"{name_or_dir}: no such folder")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError
    paths = {}
    for n in (*names, *optional):
        try:
            paths[n] = hf_hub_download(name_or_dir, n)
        except EntryNotFoundError:
            if n in names:
                raise FileNotFoundError(f"Hub model {name_or_dir!r} has no {n}") from None
        except Exception as e:  # offline, unknown id, gated repo: say how to go on
            raise OSError(f"could not fetch {n} of {name_or_dir!r} from the Hub ({type(e).__name__}: {e}). "
                          f"Offline? Pass a local folder with config.json, vocab.txt and model.safetensors "
                          f"instead, e.g. --model=/path/to/bert-base-multilingual-cased") from e
    return paths
