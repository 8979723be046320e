"""Drives the official KMS instance SDK for Python against hkms-gateway over HTTPS.

The client verifies the gateway's certificate with the exported CA bundle
(PrivateKmsCA_<instance>.pem) and checks the host name. Modes:

  ops     every operation the appliance serves, with AAD, and the refusals of the others;
  encrypt one Encrypt call; prints {"ok": true} or the error the SDK raised;
  oversize one Encrypt call with a 4 MB plaintext (over the 3 MB body limit); prints the
          error the SDK raised;
  secrets GetSecretValue calls, one per entry of --reads (a JSON list of objects with
          "name" and optional "stage", "version", "fetch_extended_config"); prints
          {"reads": [...]}, each the response's fields or the error the SDK raised.

Prints one JSON object. Run it with the interpreter of the SDK's virtual environment.
"""

import argparse
import base64
import json
import sys
import time

from openapi.models import Config
from openapi_util.models import RuntimeOptions
from sdk import models
from sdk.client import Client


def error_of(e):
    data = getattr(e, "data", None) or {}
    return {
        "code": getattr(e, "code", None) or type(e).__name__,
        "message": str(getattr(e, "message", e)),
        "http": data.get("httpCode") if isinstance(data, dict) else None,
        "request_id": data.get("requestId") if isinstance(data, dict) else None,
    }


def code_of(call):
    try:
        call()
        return None
    except Exception as e:  # TeaException / UnretryableException carry the protocol code
        return error_of(e)["code"]


def ops(c, key, alias, denied):
    out = {}
    aad = b"tenant=42"
    headers = RuntimeOptions(response_headers=["x-kms-requestid", "x-kms-migrationkeyversionid"])

    enc = c.encrypt_with_options(
        models.EncryptRequest(key_id=key, plaintext=b"gcm secret", aad=aad), headers
    )
    out["encrypt"] = {
        "key_id": enc.key_id,
        "algorithm": enc.algorithm,
        "iv_len": len(enc.iv),
        "blob_len": len(enc.ciphertext_blob),
        "request_id": enc.request_id,
        "header_request_id": (enc.response_headers or {}).get("x-kms-requestid"),
        "header_version": (enc.response_headers or {}).get("x-kms-migrationkeyversionid"),
    }
    dec = c.decrypt(
        models.DecryptRequest(key_id=key, ciphertext_blob=enc.ciphertext_blob, iv=enc.iv, aad=aad)
    )
    out["decrypt"] = dec.plaintext.decode()
    out["decrypt_wrong_aad"] = code_of(
        lambda: c.decrypt(
            models.DecryptRequest(
                key_id=key, ciphertext_blob=enc.ciphertext_blob, iv=enc.iv, aad=b"tenant=43"
            )
        )
    )
    # A ciphertext from Encrypt, decrypted by AdvanceDecrypt (KeyId and Iv given).
    adec = c.advance_decrypt(
        models.AdvanceDecryptRequest(
            key_id=key, ciphertext_blob=enc.ciphertext_blob, iv=enc.iv, aad=aad
        )
    )
    out["advance_decrypt_of_encrypt"] = adec.plaintext.decode()

    by_alias = c.encrypt(models.EncryptRequest(key_id=alias, plaintext=b"by alias", aad=aad))
    out["alias_key_id"] = by_alias.key_id
    out["alias_decrypt"] = c.decrypt(
        models.DecryptRequest(
            key_id=alias, ciphertext_blob=by_alias.ciphertext_blob, iv=by_alias.iv, aad=aad
        )
    ).plaintext.decode()

    cbc = c.encrypt(
        models.EncryptRequest(key_id=key, plaintext=b"cbc with padding", algorithm="AES_CBC")
    )
    out["cbc_pkcs7"] = {
        "iv_len": len(cbc.iv),
        "blob_len": len(cbc.ciphertext_blob),
        "padding": cbc.padding_mode,
        "plaintext": c.decrypt(
            models.DecryptRequest(
                key_id=key, ciphertext_blob=cbc.ciphertext_blob, iv=cbc.iv, algorithm="AES_CBC",
                padding_mode="PKCS7_PADDING",
            )
        ).plaintext.decode(),
    }
    block = b"0123456789abcdef" * 2
    nop = c.encrypt(
        models.EncryptRequest(
            key_id=key, plaintext=block, algorithm="AES_CBC", padding_mode="NO_PADDING"
        )
    )
    out["cbc_nopad"] = {
        "blob_len": len(nop.ciphertext_blob),
        "plaintext": c.decrypt(
            models.DecryptRequest(
                key_id=key, ciphertext_blob=nop.ciphertext_blob, iv=nop.iv, algorithm="AES_CBC",
                padding_mode="NO_PADDING",
            )
        ).plaintext.decode(),
    }
    out["cbc_nopad_partial_block"] = code_of(
        lambda: c.encrypt(
            models.EncryptRequest(
                key_id=key, plaintext=b"short", algorithm="AES_CBC", padding_mode="NO_PADDING"
            )
        )
    )

    aenc = c.advance_encrypt(
        models.AdvanceEncryptRequest(key_id=key, plaintext=b"advance secret", aad=aad)
    )
    out["advance_encrypt"] = {"key_version_id": aenc.key_version_id, "iv_len": len(aenc.iv)}
    out["advance_decrypt"] = c.advance_decrypt(
        models.AdvanceDecryptRequest(ciphertext_blob=aenc.ciphertext_blob, aad=aad)
    ).plaintext.decode()
    out["advance_decrypt_version"] = c.advance_decrypt(
        models.AdvanceDecryptRequest(ciphertext_blob=aenc.ciphertext_blob, aad=aad)
    ).key_version_id

    # AdvanceEncrypt with AES_CBC: the self-describing blob carries algorithm, padding and
    # Iv, so AdvanceDecrypt (and Decrypt) take it alone. CBC authenticates no AAD.
    acbc = c.advance_encrypt(
        models.AdvanceEncryptRequest(key_id=key, plaintext=b"advance cbc", algorithm="AES_CBC")
    )
    acbc_dec = c.advance_decrypt(models.AdvanceDecryptRequest(ciphertext_blob=acbc.ciphertext_blob))
    out["advance_cbc_pkcs7"] = {
        "algorithm": acbc.algorithm,
        "padding": acbc.padding_mode,
        "iv_len": len(acbc.iv),
        "blob_len": len(acbc.ciphertext_blob),
        "key_version_id": acbc.key_version_id,
        "plaintext": acbc_dec.plaintext.decode(),
        "decrypted_algorithm": acbc_dec.algorithm,
        "decrypted_padding": acbc_dec.padding_mode,
        "decrypt_plaintext": c.decrypt(
            models.DecryptRequest(ciphertext_blob=acbc.ciphertext_blob)
        ).plaintext.decode(),
    }
    anop = c.advance_encrypt(
        models.AdvanceEncryptRequest(
            key_id=key, plaintext=block, algorithm="AES_CBC", padding_mode="NO_PADDING"
        )
    )
    out["advance_cbc_nopad"] = {
        "padding": anop.padding_mode,
        "blob_len": len(anop.ciphertext_blob),
        "plaintext": c.advance_decrypt(
            models.AdvanceDecryptRequest(ciphertext_blob=anop.ciphertext_blob)
        ).plaintext.decode(),
    }
    out["advance_cbc_nopad_partial_block"] = code_of(
        lambda: c.advance_encrypt(
            models.AdvanceEncryptRequest(
                key_id=key, plaintext=b"short", algorithm="AES_CBC", padding_mode="NO_PADDING"
            )
        )
    )
    out["advance_cbc_with_aad"] = code_of(
        lambda: c.advance_encrypt(
            models.AdvanceEncryptRequest(
                key_id=key, plaintext=b"x", algorithm="AES_CBC", aad=aad
            )
        )
    )
    out["advance_decrypt_cbc_with_aad"] = code_of(
        lambda: c.advance_decrypt(
            models.AdvanceDecryptRequest(ciphertext_blob=acbc.ciphertext_blob, aad=aad)
        )
    )

    # The transfer SDK's Decrypt: it keeps versionId || Iv || CiphertextBlob from Encrypt and
    # sends them back with the version in x-kms-migrationkeyversionid instead of a KeyId.
    version = out["encrypt"]["header_version"]
    classic = version.encode() + enc.iv + enc.ciphertext_blob
    mig = c.decrypt(
        models.DecryptRequest(
            ciphertext_blob=classic[36 + 12:],
            iv=classic[36:36 + 12],
            aad=aad,
            request_headers={"x-kms-migrationkeyversionid": classic[:36].decode()},
        )
    )
    out["migration_decrypt"] = {"key_id": mig.key_id, "plaintext": mig.plaintext.decode()}

    dk = c.generate_data_key(
        models.GenerateDataKeyRequest(key_id=key, number_of_bytes=32, aad=aad)
    )
    dk_back = c.decrypt(
        models.DecryptRequest(key_id=key, ciphertext_blob=dk.ciphertext_blob, iv=dk.iv, aad=aad)
    )
    out["data_key"] = {"len": len(dk.plaintext), "round_trip": dk_back.plaintext == dk.plaintext}
    adk = c.advance_generate_data_key(
        models.AdvanceGenerateDataKeyRequest(key_id=key, number_of_bytes=16, aad=aad)
    )
    adk_back = c.advance_decrypt(
        models.AdvanceDecryptRequest(ciphertext_blob=adk.ciphertext_blob, iv=adk.iv, aad=aad)
    )
    out["advance_data_key"] = {
        "len": len(adk.plaintext),
        "round_trip": adk_back.plaintext == adk.plaintext,
        "key_version_id": adk.key_version_id,
    }
    out["random_len"] = len(c.generate_random(models.GenerateRandomRequest(length=48)).random)

    out["sign"] = code_of(
        lambda: c.sign(models.SignRequest(key_id=key, message=b"m", message_type="RAW"))
    )
    out["get_secret_value"] = code_of(
        lambda: c.get_secret_value(models.GetSecretValueRequest(secret_name="db"))
    )
    out["denied"] = code_of(lambda: c.encrypt(models.EncryptRequest(key_id=denied, plaintext=b"x")))
    out["unknown_alias"] = code_of(
        lambda: c.encrypt(models.EncryptRequest(key_id="alias/none", plaintext=b"x"))
    )
    return out


def secret_reads(c, reads):
    """GetSecretValue for each read; a binary value is also given decoded from Base64."""
    out = []
    for r in reads:
        try:
            v = c.get_secret_value(
                models.GetSecretValueRequest(
                    secret_name=r["name"],
                    version_stage=r.get("stage"),
                    version_id=r.get("version"),
                    fetch_extended_config=r.get("fetch_extended_config"),
                )
            )
            got = {
                "ok": True,
                "secret_name": v.secret_name,
                "secret_type": v.secret_type,
                "secret_data": v.secret_data,
                "secret_data_type": v.secret_data_type,
                "version_stages": list(v.version_stages or []),
                "version_id": v.version_id,
                "create_time": v.create_time,
                "request_id": v.request_id,
                "extended_config": v.extended_config,
                "automatic_rotation": v.automatic_rotation,
                "last_rotation_date": v.last_rotation_date,
                "next_rotation_date": v.next_rotation_date,
                "rotation_interval": v.rotation_interval,
            }
            if v.secret_data_type == "binary":
                got["binary_hex"] = base64.b64decode(v.secret_data, validate=True).hex()
            out.append(got)
        except Exception as e:  # TeaException / UnretryableException carry the protocol code
            out.append({"ok": False, "error": error_of(e)})
    return {"reads": out}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ops", "encrypt", "oversize", "secrets"])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--client-key-file", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--password", help="use this password instead of the file's")
    ap.add_argument("--key-id", default="")
    ap.add_argument("--reads", default="[]", help="secrets mode: the reads, a JSON list")
    ap.add_argument("--alias", default="")
    ap.add_argument("--denied-key-id", default="")
    args = ap.parse_args()

    with open(args.password_file, encoding="utf-8") as f:
        password = f.read().strip("\r\n")
    if args.password is not None:
        password = args.password
    out = {}
    started = time.monotonic()
    try:
        client = Client(
            Config(
                protocol="https",
                endpoint=args.endpoint,
                client_key_file=args.client_key_file,
                password=password,
                ca_file_path=args.ca,
            )
        )
        if args.mode == "ops":
            out = ops(client, args.key_id, args.alias, args.denied_key_id)
        elif args.mode == "secrets":
            out = secret_reads(client, json.loads(args.reads))
        elif args.mode == "oversize":
            big = b"\x01" * (4 * 1024 * 1024)
            r = client.encrypt(models.EncryptRequest(key_id=args.key_id, plaintext=big))
            out = {"ok": True, "key_id": r.key_id}
        else:
            r = client.encrypt(models.EncryptRequest(key_id=args.key_id, plaintext=b"x"))
            out = {"ok": True, "key_id": r.key_id}
    except Exception as e:
        out = {"ok": False, "error": error_of(e)}
    out["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
