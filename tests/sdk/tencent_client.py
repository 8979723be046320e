"""Drives Tencent Cloud's official Python SDKs (tencentcloud-sdk-python-kms / -ssm),
unchanged, against an hkms gateway.

Reads a JSON array of calls from stdin, each {"service": "kms"|"ssm", "action": "...",
"params": {...}}, makes each with the SDK's own request model and client method, and
prints a JSON array with, per call, {"ok": <the response model as JSON>} or
{"error": {"code", "message", "request_id"}} (a TencentCloudSDKException).

The SecretKey comes from the environment (TC_SECRET_KEY), never from the command line.
--timestamp-offset moves the client's clock (seconds) to test the server's skew check.
"""

import argparse
import json
import os
import sys
import time

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.kms.v20190118 import kms_client, models as kms_models
from tencentcloud.ssm.v20190923 import ssm_client, models as ssm_models

SERVICES = {
    "kms": (kms_client.KmsClient, kms_models),
    "ssm": (ssm_client.SsmClient, ssm_models),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True, help="host:port of the gateway")
    p.add_argument("--ca", required=True, help="the instance CA bundle")
    p.add_argument("--secret-id", required=True)
    p.add_argument("--region", default="ap-guangzhou")
    p.add_argument("--timestamp-offset", type=int, default=0)
    a = p.parse_args()
    if a.timestamp_offset:
        real = time.time
        time.time = lambda: real() + a.timestamp_offset
    cred = credential.Credential(a.secret_id, os.environ["TC_SECRET_KEY"])
    http = HttpProfile(endpoint=a.endpoint, certification=a.ca)
    clients = {
        name: cls(cred, a.region, ClientProfile(httpProfile=http))
        for name, (cls, _) in SERVICES.items()
    }
    out = []
    for call in json.load(sys.stdin):
        models = SERVICES[call["service"]][1]
        action = call["action"]
        req = getattr(models, action + "Request")()
        req.from_json_string(json.dumps(call.get("params", {})))
        try:
            resp = getattr(clients[call["service"]], action)(req)
            out.append({"ok": json.loads(resp.to_json_string())})
        except TencentCloudSDKException as e:
            out.append({"error": {"code": e.get_code(), "message": e.get_message(),
                                  "request_id": e.get_request_id()}})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
