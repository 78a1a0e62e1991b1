"""Download a model from the Hugging Face Hub: only when the user explicitly asks.

Nothing else in the engine touches the network (every load passes ``local_files_only=True``).
Only safetensors weights, configs and tokenizer files are fetched (``allow_patterns``), so a
repository that only has pickle weights ends with a clear message instead of a ``.bin`` on disk.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from studio.errors import UserError

ALLOW_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.json", "tokenizer.model",
                  "spiece.model", "*.tiktoken", "merges.txt", "vocab.txt", "*.md", "LICENSE*"]
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def models_dir(workspace: Path) -> Path:
    """Where downloaded models live: ``<workspace>/models/<owner>--<name>``."""
    return workspace / "models"


def is_offline() -> bool:
    """True when the user (or the test suite) set ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def download_model(repo_id: str, workspace: Path, revision: str = "main") -> Path:
    """Fetch ``repo_id`` (e.g. ``HuggingFaceTB/SmolLM2-135M``) into the workspace.

    Returns the model folder. Raises :class:`UserError` when offline, when the repository does not
    exist or is gated, or when it has no safetensors weights.
    """
    repo_id = repo_id.strip()
    if not _REPO_RE.match(repo_id):
        raise UserError(f"{repo_id!r} is not a Hub model id (it looks like owner/name, for "
                        "example HuggingFaceTB/SmolLM2-135M)")
    if is_offline():
        raise UserError("downloads are switched off (HF_HUB_OFFLINE is set): the studio is "
                        "offline. Unset HF_HUB_OFFLINE and connect to the internet, or copy a "
                        "model folder onto this machine and choose it with Browse.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    target = models_dir(workspace) / repo_id.replace("/", "--")
    try:
        snapshot_download(repo_id=repo_id, revision=revision, local_dir=str(target),
                          allow_patterns=ALLOW_PATTERNS)
    except GatedRepoError:
        raise UserError(f"{repo_id} is gated: accept its licence on huggingface.co and log in "
                        "with `hf auth login`, then try again") from None
    except RepositoryNotFoundError:
        raise UserError(f"no model named {repo_id} on the Hugging Face Hub (check the spelling; "
                        "private models need `hf auth login`)") from None
    except RevisionNotFoundError:
        raise UserError(f"{repo_id} has no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise UserError("cannot reach the Hugging Face Hub: this machine seems to be offline. "
                        "Connect to the internet and try again, or copy a model folder onto "
                        "this machine and choose it with Browse.") from None
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"downloading {repo_id} failed: {str(exc).splitlines()[0]}") from None
    if not list(target.glob("*.safetensors")):
        shutil.rmtree(target, ignore_errors=True)
        raise UserError(f"{repo_id} has no safetensors weights (only pickle files, which the "
                        "studio refuses); nothing was kept")
    return target
