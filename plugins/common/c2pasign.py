"""C2PA Content Credentials for exported images: signing with the user's certificate, reading.

The studio's own provenance (:mod:`plugins.common.provenance`) says where a file came from,
but anyone can write it. A C2PA manifest is signed: with a certificate the user holds (their
organisation's, or one from a C2PA-conformant authority), viewers such as
contentcredentials.org/verify show who vouches for the file, that it was made by a trained
model (the ``c2pa.created`` action with IPTC's ``trainedAlgorithmicMedia``), and whether it was
changed after signing. The manifest repeats the studio's manifest as an assertion
(``org.generative-studio.provenance``) and holds no path: the title is the file's name.

Works offline (no timestamp authority is contacted; the signature carries the signing time of
this computer). ``c2pa-python`` (the Content Authenticity Initiative's library) is optional:
without it, :func:`available` is False and :func:`summary` returns None. No Qt, no torch.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from plugins.common.provenance import SOFTWARE, Provenance
from studio.errors import UserError
from studio.storage import atomic_path

ASSERTION = "org.generative-studio.provenance"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
        ".webp": "image/webp", ".gif": "image/gif", ".wav": "audio/wav"}
SIGNABLE = (".png",)  # what the studio signs (the formats its images are exported in)


def available() -> bool:
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def _alg(key_pem: bytes) -> str:
    """The C2PA signing algorithm for a private key (the key decides it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"the private key cannot be read ({exc}): give an unencrypted PEM "
                        "key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in algs:
            raise UserError(f"C2PA cannot sign with an EC key on {key.curve.name}: use P-256")
        return algs[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise UserError("C2PA signs with EC (P-256/384/521), RSA (PS256) or Ed25519 keys")


def manifest_json(prov: Provenance, title: str) -> dict[str, Any]:
    """The C2PA manifest definition: created by a trained model, with the studio's manifest."""
    action: dict[str, Any] = {"action": "c2pa.created",
                              "softwareAgent": {"name": SOFTWARE, "version": prov.studio}}
    if prov.iptc_uri:
        action["digitalSourceType"] = prov.iptc_uri
    return {
        "claim_generator_info": [{"name": SOFTWARE, "version": prov.studio}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [action]}},
            {"label": ASSERTION, "data": prov.to_json()},
        ],
    }


def sign(path: str | os.PathLike[str], cert: str | os.PathLike[str],
         key: str | os.PathLike[str], prov: Provenance | None = None) -> Path:
    """Sign the file at ``path`` in place with a C2PA manifest.

    ``cert`` is a PEM file with the signing certificate first, then its issuers (not the root);
    ``key`` the unencrypted PEM private key. ``prov`` defaults to the studio provenance the
    file already carries (a file without one is refused: there is nothing to vouch for)."""
    from plugins.common import provenance

    if not available():
        raise UserError("signing needs the c2pa-python package (pip install c2pa-python)")
    import c2pa

    path = Path(path)
    if path.suffix.lower() not in SIGNABLE:
        raise UserError(f"{path.name}: the studio signs PNG images with C2PA")
    prov = prov or provenance.read(path)
    if prov is None:
        raise UserError(f"{path.name} carries no studio provenance: export it from the studio "
                        "first, then sign it")
    try:
        chain, key_pem = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the certificate or key: {exc}") from None
    if b"BEGIN CERTIFICATE" not in chain:
        raise UserError(f"{Path(cert).name} holds no PEM certificate")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(_alg(key_pem), chain, key_pem, None))
        builder = c2pa.Builder(json.dumps(manifest_json(prov, path.name)))
        with open(path, "rb") as src, atomic_path(path, suffix=path.suffix) as tmp, \
                open(tmp, "w+b") as dest:
            builder.sign(signer, MIME[path.suffix.lower()], src, dest)
    except c2pa.C2paError as exc:
        raise UserError(f"C2PA signing failed: {exc} (the certificate must be an end-entity "
                        "certificate for digital signatures, followed by its issuers)") from None
    return path


def summary(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a file's C2PA manifest says (None without one, or without c2pa-python):
    the signer, when, the digital source type, the studio's assertion and the validation."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None or not available():
        return None
    import c2pa

    try:
        with open(path, "rb") as fh:
            data = fh.read()
        reader = c2pa.Reader(mime, io.BytesIO(data))
        store = json.loads(reader.json())
    except (c2pa.C2paError, OSError, ValueError):
        return None
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    if not active:
        return None
    sig = active.get("signature_info") or {}
    source, studio = "", None
    for a in active.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions", []):
                source = source or str(act.get("digitalSourceType", ""))
        elif a.get("label") == ASSERTION:
            studio = a.get("data")
    failures = [s.get("code", "") for s in store.get("validation_status", [])
                if s.get("code") not in ("signingCredential.untrusted",)]
    return {"signer": sig.get("common_name") or sig.get("issuer") or "",
            "issuer": sig.get("issuer", ""), "time": sig.get("time", ""),
            "digital_source_type": source, "studio": studio,
            "state": str(reader.get_validation_state() or ""),
            "trusted": not any(s.get("code") == "signingCredential.untrusted"
                               for s in store.get("validation_status", [])),
            "failures": failures}


def words(s: dict[str, Any]) -> str:
    """A C2PA summary in plain words."""
    who = s.get("signer") or "an unnamed signer"
    issuer = s.get("issuer")
    text = f"It carries C2PA Content Credentials signed by {who}" + (
        f" (certificate from {issuer})" if issuer and issuer != who else "")
    if s.get("failures"):
        text += (": the file was changed after signing, or the signature is broken "
                 f"({', '.join(s['failures'][:3])}).")
    else:
        text += ": the signature matches the file."
    if not s.get("trusted"):
        text += (" The certificate is not on the C2PA trust list, so viewers show it as "
                 "unverified: trust it as far as you trust its holder.")
    return text
