//! The gateway's own refusals, in the envelope of the API the request speaks
//! ([`crate::front::Api`]): the KMS instance API's protobuf `Error` with the HTTP status, or
//! Tencent Cloud API 3.0's JSON `{"Response": {"Error": ...}}` with HTTP 200 (its SDKs
//! report any other status as a network failure).

use crate::front::Api;
use crate::instance_api as api;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use prost::Message;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The content type of `api`'s answers, for answers from hkmsd that do not name one.
pub fn content_type(api: Api) -> HeaderValue {
    HeaderValue::from_static(match api {
        Api::Instance => PROTOBUF,
        Api::Tencent => JSON,
    })
}

/// Tencent's code for a refusal the instance API answers with `status`: the caps are
/// `RequestLimitExceeded`, hkmsd out of reach or a failed relay `InternalError`, and the
/// request's own faults (size, path, a body too slow or unreadable) `InvalidParameter`.
fn tencent_code(status: u16) -> &'static str {
    match status {
        429 => "RequestLimitExceeded",
        500.. => "InternalError",
        _ => "InvalidParameter",
    }
}

/// A refusal made by the gateway itself: `status` and `code` as the instance API has them.
pub fn refusal(api: Api, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (status, body, id_header) = match api {
        Api::Instance => (
            status,
            api::Error {
                status_code: status.into(),
                error_code: code.into(),
                error_message: message.into(),
                request_id: request_id.clone(),
            }
            .encode_to_vec(),
            "x-kms-requestid",
        ),
        Api::Tencent => (
            200,
            serde_json::to_vec(&serde_json::json!({"Response": {
                "Error": {"Code": tencent_code(status), "Message": message},
                "RequestId": request_id,
            }}))
            .unwrap_or_default(),
            "x-tc-requestid",
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, content_type(api));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(id_header, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> Vec<u8> {
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn each_api_gets_its_own_envelope() {
        let r = refusal(
            Api::Instance,
            429,
            "Rejected.Throttling",
            "QPS Limit Exceeded",
        );
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[CONTENT_TYPE], PROTOBUF);
        let e = api::Error::decode(body(r).await.as_slice()).unwrap();
        assert_eq!(e.error_code, "Rejected.Throttling");

        let r = refusal(
            Api::Tencent,
            429,
            "Rejected.Throttling",
            "QPS Limit Exceeded",
        );
        assert_eq!(
            r.status(),
            200,
            "Tencent's SDKs read errors from 200 answers only"
        );
        assert_eq!(r.headers()[CONTENT_TYPE], JSON);
        let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
        assert_eq!(v["Response"]["Error"]["Code"], "RequestLimitExceeded");
        assert_eq!(v["Response"]["Error"]["Message"], "QPS Limit Exceeded");
        assert!(v["Response"]["RequestId"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
    }
}
