//! `hkms client-key rotate`: changing an AAP's ClientKey before it expires.
//!
//! The new ClientKey is made and registered exactly as `client-key create` does (its two
//! files written), then hkmsd retires the AAP's earlier ClientKeys after the overlap the
//! operator chose (`RetireClientKeys`). Everything that can be checked here is checked
//! before hkmsd registers anything; if the retirement is refused all the same, the new key
//! is deleted again and its files removed, so the command did nothing.

use super::client_key_new::{retire_time, CreateClientKey, NewClientKey, Registered, Validity};
use super::resource::{noted, Printed, Row};
use crate::access::clientkey;
use crate::client::Client;
use crate::clock::rfc3339;
use crate::error::KmsError;
use crate::proto::{ClientKeySummary, ListClientKeysRequest, RetireClientKeysRequest};
use clap::Args;
use serde_json::json;
use tonic::Status;

/// Days the earlier ClientKeys keep working when --overlap-days is not given.
pub const DEFAULT_OVERLAP_DAYS: i64 = 7;

pub const EXAMPLES: &str = "\
Examples:
  # A new ClientKey for billing; the earlier ones keep working 7 more days:
  hkms client-key rotate --aap billing --output-dir ./billing-new
  # Give the application a month to move, with a password of your own:
  hkms client-key rotate --aap billing --overlap-days 30 --output-dir ./billing-new \\
      --password-file ./password.txt
  # A key that leaked: refuse the earlier ones at once:
  hkms client-key rotate --aap billing --overlap-days 0 --output-dir ./billing-new

  # Both keys, with their days left and when the earlier ones stop being accepted:
  hkms client-key list --aap billing";

#[derive(Debug, Args)]
pub struct RotateClientKey {
    #[command(flatten)]
    pub new: CreateClientKey,
    /// Days during which the AAP's earlier ClientKeys keep working, 0 to 90 (0: refused at
    /// once).
    #[arg(long, default_value_t = DEFAULT_OVERLAP_DAYS, allow_hyphen_values = true)]
    pub overlap_days: i64,
}

fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
}

/// Runs `hkms client-key rotate`.
pub async fn rotate(c: &mut Client, a: &RotateClientKey) -> Result<Printed, Status> {
    let aap = &a.new.aap;
    let overlap = a.overlap_days;
    crate::access::rotation::check_overlap(overlap)?;
    // The AAP must exist (ResourceNotFound otherwise) and have a key to change.
    let before = c
        .access
        .list_client_keys(ListClientKeysRequest {
            aap_name: aap.clone(),
        })
        .await?
        .into_inner()
        .client_keys;
    if before.is_empty() {
        return Err(usage(format!(
            "AAP {aap} has no ClientKey to change; create its first with hkms client-key \
             create --aap {aap} --output-dir <dir>"
        )));
    }
    let new = NewClientKey::prepare(
        aap,
        &a.new.output_dir,
        a.new.password_file.as_deref(),
        a.new.not_before.as_deref(),
        Validity::from_days(a.new.validity_days),
    )?;
    // The new key must work when the earlier ones stop.
    let retire_at = clientkey::now_unix() + overlap * 86_400;
    let (_, then) = clientkey::standing(new.not_before, new.not_after, 0, retire_at);
    if !clientkey::accepted(then) {
        return Err(usage(format!(
            "the new ClientKey would be valid from {} to {}, so not at {} when the earlier \
             ones retire; change --not-before, --validity-days or --overlap-days",
            rfc3339(new.not_before),
            rfc3339(new.not_after),
            rfc3339(retire_at)
        )));
    }
    let made = new.register(c).await?;
    let req = RetireClientKeysRequest {
        aap_name: aap.clone(),
        keep_client_key_id: made.key.client_key_id.clone(),
        overlap_days: overlap,
    };
    let retired = match c.access.retire_client_keys(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            let note = match made.undo(c).await {
                Ok(()) => "the new ClientKey was deleted again and its files removed".to_owned(),
                Err(left) => format!("undoing the new ClientKey failed, {left}"),
            };
            return Err(noted(e, &note));
        }
    };
    Ok(printed(
        &made,
        overlap,
        retired.retire_unix,
        &retired.client_keys,
    ))
}

/// What `rotate` prints: the new key and its files, then the AAP's earlier keys and when
/// each stops (or stopped) being accepted.
fn printed(
    made: &Registered,
    overlap: i64,
    retire_unix: i64,
    keys: &[ClientKeySummary],
) -> Printed {
    let earlier: Vec<&ClientKeySummary> = keys
        .iter()
        .filter(|k| k.client_key_id != made.key.client_key_id)
        .collect();
    let when = if overlap == 0 {
        "are refused from now on".to_owned()
    } else {
        format!(
            "keep working for {overlap} day(s), until {}, then are refused (a key retiring \
             sooner keeps its date)",
            rfc3339(retire_unix)
        )
    };
    let mut text = format!("{}\n\nThe AAP's earlier ClientKeys {when}:", made.text());
    for k in &earlier {
        let until = retire_time(k).unwrap_or_default();
        let line = match k.state.as_str() {
            "Retiring" => format!("accepted until {until}"),
            "Retired" => format!("refused since {until}"),
            other => other.to_owned(),
        };
        text.push_str(&format!("\n  {}  {line}", k.client_key_id));
    }
    if overlap > 0 {
        text.push_str("\nConfigure the application with the new files before then.");
    }
    text.push_str(&format!(
        "\nhkms client-key list --aap {} shows every key and its days left.",
        made.key.aap_name
    ));
    let json = json!({
        "ClientKey": made.json(),
        "OverlapDays": overlap,
        "RetireTime": rfc3339(retire_unix),
        "EarlierClientKeys": earlier.iter().map(|k| k.entry()).collect::<Vec<_>>(),
    });
    (text, json)
}
