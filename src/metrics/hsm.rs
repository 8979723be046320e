//! HSM members, read at scrape time from the counters the pool keeps on each member
//! (atomics on the hot path; nothing here runs during a request).

use crate::hsm::Pool;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::Arc;

/// Every state a member can be in (`hkms_hsm_member_state`).
pub const STATES: [&str; 3] = ["Up", "Draining", "Down"];

/// The pool's members as metrics.
#[derive(Debug)]
pub struct HsmCollector(pub Arc<Pool>);

/// Writes one gauge or counter family with a value per member.
fn family<V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Vec<(&'static str, String)>, V)>,
    mut put: impl FnMut(&mut prometheus_client::encoding::MetricEncoder, &V) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let mut row = metric.encode_family(&labels)?;
        put(&mut row, &value)?;
    }
    Ok(())
}

impl Collector for HsmCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let members: Vec<_> = self
            .0
            .members()
            .into_iter()
            .map(|m| (m.name.clone(), m.snapshot(), m.metrics()))
            .collect();
        let by_member = |n: &String| vec![("member", n.clone())];
        let gauge =
            |row: &mut prometheus_client::encoding::MetricEncoder, v: &i64| row.encode_gauge(v);
        let counter = |row: &mut prometheus_client::encoding::MetricEncoder, v: &u64| {
            row.encode_counter::<NoLabelSet, _, u64>(v, None)
        };
        family(
            &mut encoder,
            "hkms_hsm_member_up",
            "1 while the member serves requests (up and not draining), else 0",
            MetricType::Gauge,
            members
                .iter()
                .map(|(n, s, _)| (by_member(n), i64::from(s.state == "Up"))),
            gauge,
        )?;
        family(
            &mut encoder,
            "hkms_hsm_member_state",
            "1 for the member's current state (Up, Draining or Down), 0 for the others",
            MetricType::Gauge,
            members.iter().flat_map(|(n, s, _)| {
                STATES.iter().map(move |st| {
                    (
                        vec![("member", n.clone()), ("state", (*st).to_owned())],
                        i64::from(s.state == *st),
                    )
                })
            }),
            gauge,
        )?;
        family(
            &mut encoder,
            "hkms_hsm_sessions_in_use",
            "Sessions of the member lent out right now (including any stuck in a hung call)",
            MetricType::Gauge,
            members
                .iter()
                .map(|(n, s, _)| (by_member(n), s.sessions_in_use as i64)),
            gauge,
        )?;
        family(
            &mut encoder,
            "hkms_hsm_sessions_max",
            "Most sessions the member may have open (max_sessions)",
            MetricType::Gauge,
            members
                .iter()
                .map(|(n, s, _)| (by_member(n), s.max_sessions as i64)),
            gauge,
        )?;
        family(
            &mut encoder,
            "hkms_hsm_cached_keys",
            "Key versions unwrapped and cached on the member",
            MetricType::Gauge,
            members
                .iter()
                .map(|(n, s, _)| (by_member(n), s.cached_keys as i64)),
            gauge,
        )?;
        family(
            &mut encoder,
            "hkms_hsm_operations",
            "Operations that succeeded on the member",
            MetricType::Counter,
            members.iter().map(|(n, s, _)| (by_member(n), s.operations)),
            counter,
        )?;
        family(
            &mut encoder,
            "hkms_hsm_errors",
            "Failures on the member, by PKCS#11 return code (CKR_ name in CamelCase) or kind",
            MetricType::Counter,
            members.iter().flat_map(|(n, _, m)| {
                m.errors.iter().map(move |(code, count)| {
                    (vec![("member", n.clone()), ("code", code.clone())], *count)
                })
            }),
            counter,
        )?;
        let mut histogram = encoder.encode_descriptor(
            "hkms_hsm_operation_duration_seconds",
            "Duration of successful operations on the member",
            None,
            MetricType::Histogram,
        )?;
        for (n, _, m) in &members {
            let labels = by_member(n);
            let h = &m.latency;
            histogram
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}
