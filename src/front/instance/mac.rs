//! Hmac (defined by the C# SDK): the MAC of a message with an HMAC key's initial version,
//! under the key's own algorithm ([`crate::crypto::mac`]).

use super::{api_error, decode, Answer, ApplicationApi, Call};
use crate::crypto::mac;
use crate::instance_api as api;
use crate::keys::VersionChoice;
use prost::Message;

impl ApplicationApi {
    pub(super) async fn hmac(&self, call: &Call<'_>) -> Answer {
        let r: api::HmacRequest = decode(call.body)?;
        let key_id = self.authorized_key(call.caller, call.api_name, &r.key_id)?;
        let m = mac::generate(&self.0, &key_id, VersionChoice::Initial, "", &r.message)
            .await
            .map_err(api_error)?;
        let body = api::HmacResponse {
            key_id: m.key_id,
            signature: m.mac,
            request_id: call.request_id.into(),
        }
        .encode_to_vec();
        Ok((body, None))
    }
}
