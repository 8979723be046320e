"""Drives Alibaba's Secrets Manager Client for Python (aliyun-secret-manager-client) against
hkms-gateway, configured for a KMS instance as its documentation says: the environment
variable `cache_client_dkms_config_info` names the endpoint, the ClientKey file, its password
file and the instance CA. The client reads through the instance SDK (and the transfer SDK)
and caches what it reads.

Two phases, one JSON line each on stdout, so that the caller can change the secret between
them:
  1. the current value of the text secret (now cached) and of the binary secret, or the
     error the client raised for --missing-secret;
  2. after a line on stdin (the caller has put a new value meanwhile): the text secret from
     the cache (still the old value), after refresh_now (the new one), and by a client that
     caches stage ACSPrevious (the old one).

Run it with the interpreter of the SDK's virtual environment, from a directory without a
secretsmanager.properties file (the client would read it).
"""

import argparse
import base64
import json
import os
import sys


def info(secret_info):
    return {
        "secret_name": secret_info.secret_name,
        "version_id": secret_info.version_id,
        "secret_value": secret_info.secret_value,
        "secret_data_type": secret_info.secret_data_type,
        "secret_type": secret_info.secret_type,
        "extended_config": secret_info.extended_config,
        "create_time": secret_info.create_time,
    }


def error_of(e):
    return {
        "code": getattr(e, "error_code", None) or getattr(e, "code", None) or type(e).__name__,
        "message": str(e),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--client-key-file", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--text-secret", required=True)
    ap.add_argument("--binary-secret", required=True)
    ap.add_argument("--missing-secret", required=True)
    args = ap.parse_args()

    os.environ["cache_client_dkms_config_info"] = json.dumps(
        [
            {
                "regionId": "hkms-local",
                "endpoint": args.endpoint,
                "clientKeyFile": args.client_key_file,
                "passwordFromFilePath": args.password_file,
                "ignoreSslCerts": False,
                "caFilePath": args.ca,
            }
        ]
    )
    # Imported once the configuration is in place.
    from alibaba_cloud_secretsmanager_client.secret_manager_cache_client_builder import (
        SecretManagerCacheClientBuilder,
    )
    from alibaba_cloud_secretsmanager_client.service.default_secret_manager_client_builder import (
        BaseSecretManagerClientBuilder,
    )

    def cache_client(stage=None):
        b = SecretManagerCacheClientBuilder.new_cache_client_builder(
            BaseSecretManagerClientBuilder.standard().build()
        )
        if stage:
            b = b.with_cache_stage(stage)
        return b.build()

    current = cache_client()
    out = {"text": info(current.get_secret_info(args.text_secret))}
    out["text_value"] = current.get_secret_value(args.text_secret)
    # get_binary_value() of this release cannot wrap its own result (its byte buffer takes
    # a bytearray, it passes bytes): the value is read from the secret's info instead, where
    # a binary secret's data is Base64 text.
    binary = current.get_secret_info(args.binary_secret)
    out["binary"] = info(binary)
    out["binary_hex"] = base64.b64decode(binary.secret_value, validate=True).hex()
    try:
        current.get_secret_value(args.missing_secret)
        out["missing"] = None
    except Exception as e:  # ClientException / ServerException of aliyunsdkcore
        out["missing"] = error_of(e)
    print(json.dumps(out), flush=True)

    if not sys.stdin.readline():
        return 1
    out = {"cached": current.get_secret_value(args.text_secret)}
    out["refreshed_ok"] = current.refresh_now(args.text_secret)
    out["refreshed"] = info(current.get_secret_info(args.text_secret))
    previous = cache_client("ACSPrevious")
    out["previous"] = info(previous.get_secret_info(args.text_secret))
    previous.close()
    current.close()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
