"""Drives the official KMS instance SDK for Python against an hkms endpoint.

Loads a ClientKey file made by `hkms client-key create` with the SDK's own loader, makes
the SDK sign real requests, and prints the outcomes as one JSON object. Run it with the
interpreter of the SDK's virtual environment (scripts/install-sdk-test-deps.sh).
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from openapi.models import Config
from openapi_util.models import RuntimeOptions
from openapi_util.protobuf import api_pb2
from sdk import models
from sdk.client import Client


def code_of(call):
    try:
        call()
        return None
    except Exception as e:  # TeaException / UnretryableException carry the protocol code
        return getattr(e, "code", None) or repr(e)


def raw_call(client, api_name, request, response):
    """Sends `request` (an api_pb2 message) through the SDK's own request machinery (signed
    like every SDK request): for what its models cannot express."""
    r = client.do_request(
        api_name, "dkms-gcs-0.2", "https", "POST", "RSA_PKCS1_SHA_256",
        request.SerializeToString(), RuntimeOptions(), {},
    )
    response.ParseFromString(r["bodyBytes"])
    return response


def signing(client, rsa, rsa_version, ec_key):
    """Sign and Verify (RAW, DIGEST and the legacy Digest field), GetPublicKey's PEM checked
    with the `cryptography` package."""
    out = {}
    msg = b"signed by the sdk"
    digest = hashlib.sha256(msg).digest()
    pems = {}
    for key in (rsa, ec_key):
        pem = client.get_public_key(models.GetPublicKeyRequest(key_id=key)).public_key
        pems[key] = serialization.load_pem_public_key(pem.encode())
    checks = {
        "RSA_PSS_SHA_256": lambda pub, sig, data, h: pub.verify(
            sig, data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH), h
        ),
        "RSA_PKCS1_SHA_256": lambda pub, sig, data, h: pub.verify(sig, data, padding.PKCS1v15(), h),
        "ECDSA_SHA_256": lambda pub, sig, data, h: pub.verify(sig, data, ec.ECDSA(h)),
    }

    for key, alg in ((rsa, "RSA_PSS_SHA_256"), (rsa, "RSA_PKCS1_SHA_256"), (ec_key, "ECDSA_SHA_256")):
        raw = client.sign(models.SignRequest(key_id=key, algorithm=alg, message=msg))
        dig = client.sign(
            models.SignRequest(key_id=key, algorithm=alg, message=digest, message_type="DIGEST")
        )
        # The legacy Digest field, which the SDK's model no longer has.
        legacy = raw_call(
            client, "Sign", api_pb2.SignRequest(KeyId=key, Algorithm=alg, Digest=digest),
            api_pb2.SignResponse(),
        )
        # Each signature verifies with the public key, outside hkms.
        for sig in (raw.signature, dig.signature, legacy.Signature):
            checks[alg](pems[key], sig, msg, hashes.SHA256())
            checks[alg](pems[key], sig, digest, Prehashed(hashes.SHA256()))
        ok = client.verify(
            models.VerifyRequest(key_id=key, algorithm=alg, message=msg, signature=raw.signature)
        )
        ok_digest = client.verify(
            models.VerifyRequest(
                key_id=key, algorithm=alg, message=digest, message_type="DIGEST",
                signature=raw.signature,
            )
        )
        wrong = client.verify(
            models.VerifyRequest(key_id=key, algorithm=alg, message=b"other", signature=raw.signature)
        )
        out[alg] = {
            "key_id": raw.key_id,
            "algorithm": raw.algorithm,
            "message_types": [raw.message_type, dig.message_type, legacy.MessageType],
            "verify": [ok.value, ok_digest.value, wrong.value],
            "verify_message_type": ok.message_type,
        }
    out["both_digest_and_message"] = code_of(
        lambda: raw_call(
            client, "Sign",
            api_pb2.SignRequest(KeyId=rsa, Algorithm="RSA_PSS_SHA_256", Message=msg, Digest=digest),
            api_pb2.SignResponse(),
        )
    )
    # The transfer SDK names the version in a header instead of the KeyId.
    by_version = client.sign(
        models.SignRequest(
            algorithm="RSA_PKCS1_SHA_256", message=msg,
            request_headers={"x-kms-migrationkeyversionid": rsa_version},
        )
    )
    checks["RSA_PKCS1_SHA_256"](pems[rsa], by_version.signature, msg, hashes.SHA256())
    out["by_version_key_id"] = by_version.key_id
    return out


def data_key_pairs(client, key):
    """The four data key pair operations with the symmetric key; each private key comes back
    from Decrypt (plain) or AdvanceDecrypt (Advance) and belongs to the public key."""
    out = {}
    aad = b"pair aad"

    def load_private(fmt, data):
        if fmt == "PEM":
            return serialization.load_pem_private_key(data, None)
        return serialization.load_der_private_key(data, None)

    def load_public(fmt, data):
        if fmt == "PEM":
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)

    def spki(public):
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    for spec, fmt in (("RSA_2048", "PEM"), ("EC_P256", "DER")):
        r = client.generate_data_key_pair(
            models.GenerateDataKeyPairRequest(key_id=key, key_pair_spec=spec, key_format=fmt, aad=aad)
        )
        back = client.decrypt(
            models.DecryptRequest(
                key_id=key, ciphertext_blob=r.private_key_ciphertext_blob, iv=r.iv, aad=aad
            )
        ).plaintext
        w = client.generate_data_key_pair_without_plaintext(
            models.GenerateDataKeyPairWithoutPlaintextRequest(
                key_id=key, key_pair_spec=spec, key_format=fmt, aad=aad
            )
        )
        w_back = client.decrypt(
            models.DecryptRequest(
                key_id=key, ciphertext_blob=w.private_key_ciphertext_blob, iv=w.iv, aad=aad
            )
        ).plaintext
        a = client.advance_generate_data_key_pair(
            models.AdvanceGenerateDataKeyPairRequest(
                key_id=key, key_pair_spec=spec, key_format=fmt, aad=aad
            )
        )
        a_back = client.advance_decrypt(
            models.AdvanceDecryptRequest(ciphertext_blob=a.private_key_ciphertext_blob, aad=aad)
        )
        aw = client.advance_generate_data_key_pair_without_plaintext(
            models.AdvanceGenerateDataKeyPairWithoutPlaintextRequest(
                key_id=key, key_pair_spec=spec, key_format=fmt, aad=aad
            )
        )
        aw_back = client.advance_decrypt(
            models.AdvanceDecryptRequest(ciphertext_blob=aw.private_key_ciphertext_blob, aad=aad)
        )
        pairs = [
            (r.public_key, back),
            (w.public_key, w_back),
            (a.public_key, a_back.plaintext),
            (aw.public_key, aw_back.plaintext),
        ]
        out[f"{spec}_{fmt}"] = {
            "key_ids": [r.key_id, w.key_id, a.key_id, aw.key_id],
            "specs": [r.key_pair_spec, w.key_pair_spec, a.key_pair_spec, aw.key_pair_spec],
            "algorithms": [r.algorithm, w.algorithm, a.algorithm, aw.algorithm],
            "iv_lens": [len(r.iv), len(w.iv), len(a.iv), len(aw.iv)],
            "plaintext_decrypts": back == r.private_key_plaintext,
            "advance_plaintext_decrypts": a_back.plaintext == a.private_key_plaintext,
            "pairs_match": [
                spki(load_private(fmt, priv).public_key()) == spki(load_public(fmt, pub))
                for pub, priv in pairs
            ],
            "advance_versions": [a.key_version_id, aw.key_version_id, a_back.key_version_id],
        }
    out["algorithm_cbc"] = code_of(
        lambda: client.generate_data_key_pair(
            models.GenerateDataKeyPairRequest(key_id=key, key_pair_spec="RSA_2048", algorithm="AES_CBC")
        )
    )
    return out


def hmac(client, key, message):
    """Hmac, which only the C# SDK exposes."""
    resp = raw_call(
        client, "Hmac", api_pb2.HmacRequest(KeyId=key, Message=message), api_pb2.HmacResponse()
    )
    return {"key_id": resp.KeyId, "mac": base64.b64encode(resp.Signature).decode(), "request_id": resp.RequestId}


def secrets(client, text_name, binary_name):
    """GetSecretValue of a text secret (current and previous) and of a binary one, whose
    SecretData is Base64."""
    cur = client.get_secret_value(models.GetSecretValueRequest(secret_name=text_name))
    prev = client.get_secret_value(
        models.GetSecretValueRequest(secret_name=text_name, version_stage="ACSPrevious")
    )
    blob = client.get_secret_value(models.GetSecretValueRequest(secret_name=binary_name))
    return {
        "current": [cur.secret_data, cur.version_id, list(cur.version_stages), cur.extended_config],
        "previous": [prev.secret_data, prev.version_id, list(prev.version_stages)],
        "binary": [blob.secret_data_type, base64.b64decode(blob.secret_data, validate=True).hex()],
        "request_id": cur.request_id,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--client-key-file", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--denied-key-id", required=True)
    ap.add_argument("--rsa-key-id", required=True)
    ap.add_argument("--rsa-version", required=True)
    ap.add_argument("--ec-key-id", required=True)
    ap.add_argument("--hmac-key-id", required=True)
    ap.add_argument("--secret-name", required=True)
    ap.add_argument("--binary-secret-name", required=True)
    args = ap.parse_args()

    with open(args.password_file, encoding="utf-8") as f:
        password = f.read().strip("\r\n")
    client = Client(
        Config(
            protocol="http",
            endpoint=args.endpoint,
            client_key_file=args.client_key_file,
            password=password,
        )
    )
    out = {}
    enc = client.encrypt(models.EncryptRequest(key_id=args.key_id, plaintext=b"hello from the sdk"))
    out["encrypt_key_id"] = enc.key_id
    out["encrypt_request_id"] = enc.request_id
    dec = client.decrypt(
        models.DecryptRequest(key_id=args.key_id, ciphertext_blob=enc.ciphertext_blob, iv=enc.iv)
    )
    out["decrypted"] = dec.plaintext.decode()
    dk = client.generate_data_key(models.GenerateDataKeyRequest(key_id=args.key_id, number_of_bytes=32))
    out["data_key_len"] = len(dk.plaintext)
    rnd = client.generate_random(models.GenerateRandomRequest(length=48))
    out["random_len"] = len(rnd.random)
    try:
        client.encrypt(models.EncryptRequest(key_id=args.denied_key_id, plaintext=b"x"))
        out["denied_code"] = None
    except Exception as e:  # TeaException / UnretryableException carry the protocol code
        out["denied_code"] = getattr(e, "code", repr(e))
        out["denied_message"] = getattr(e, "message", "")
    out["signing"] = signing(client, args.rsa_key_id, args.rsa_version, args.ec_key_id)
    out["data_key_pairs"] = data_key_pairs(client, args.key_id)
    out["hmac"] = [hmac(client, args.hmac_key_id, m) for m in (b"mac me", b"mac me", b"other")]
    # A key whose usage does not allow the operation.
    out["wrong_usage"] = {
        "sign_with_aes": code_of(
            lambda: client.sign(
                models.SignRequest(key_id=args.key_id, algorithm="RSA_PSS_SHA_256", message=b"m")
            )
        ),
        "encrypt_with_rsa": code_of(
            lambda: client.encrypt(models.EncryptRequest(key_id=args.rsa_key_id, plaintext=b"m"))
        ),
        "pair_under_rsa": code_of(
            lambda: client.generate_data_key_pair(
                models.GenerateDataKeyPairRequest(key_id=args.rsa_key_id, key_pair_spec="EC_P256")
            )
        ),
        "hmac_with_aes": code_of(lambda: hmac(client, args.key_id, b"m")),
        "public_key_of_aes": code_of(
            lambda: client.get_public_key(models.GetPublicKeyRequest(key_id=args.key_id))
        ),
    }
    out["secrets"] = secrets(client, args.secret_name, args.binary_secret_name)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
