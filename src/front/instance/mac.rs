//! Hmac (defined by the C# SDK): the MAC of a message with an HMAC key's initial version,
//! under the key's own algorithm ([`crate::ops::asymmetric::mac`]).

use super::{decode, required, Answer, ApplicationApi, Call};
use crate::instance_api as api;
use crate::ops::{asymmetric, VersionChoice};
use prost::Message;

impl ApplicationApi {
    pub(super) async fn hmac(&self, call: &Call<'_>) -> Answer {
        let r: api::HmacRequest = decode(call.body)?;
        let key_ref = required(&r.key_id)?;
        let initial = VersionChoice::Initial;
        let m = asymmetric::mac(call.ctx(), "Hmac", key_ref, initial, "", &r.message).await?;
        let body = api::HmacResponse {
            key_id: m.key_id,
            signature: m.mac,
            request_id: call.request_id.into(),
        }
        .encode_to_vec();
        Ok((body, None))
    }
}
