"""Drives the official KMS instance SDK for Python against an hkms endpoint.

Loads a ClientKey file made by `hkms client-key create` with the SDK's own loader, makes
the SDK sign real requests, and prints the outcomes as one JSON object. Run it with the
interpreter of the SDK's virtual environment (scripts/install-sdk-test-deps.sh).
"""

import argparse
import json
import sys

from openapi.models import Config
from sdk import models
from sdk.client import Client


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--client-key-file", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--denied-key-id", required=True)
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
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
