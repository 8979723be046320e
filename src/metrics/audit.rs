//! The audit trail's state, read from [`crate::audit::trail::Trail::status`] at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::Arc;

/// The trail as metrics.
#[derive(Debug)]
pub struct AuditCollector(pub Arc<crate::audit::trail::Trail>);

impl Collector for AuditCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = self.0.status();
        let gauges: [(&str, &str, i64); 5] = [
            (
                "hkms_audit_enabled",
                "1 when the audit trail is enabled ([audit]), else 0",
                i64::from(s.enabled),
            ),
            (
                "hkms_audit_writable",
                "1 while the audit trail's last write reached the disk, else 0",
                i64::from(s.writable),
            ),
            (
                "hkms_audit_backlog_records",
                "Audit records submitted and not yet durable",
                s.backlog as i64,
            ),
            (
                "hkms_audit_last_sequence",
                "Sequence number of the last durable audit record (0: none)",
                s.last_seq as i64,
            ),
            (
                "hkms_audit_segments",
                "Segment files of the audit trail",
                s.segments as i64,
            ),
        ];
        for (name, help, value) in gauges {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        encoder
            .encode_descriptor(
                "hkms_audit_bytes",
                "Bytes of records in the audit trail's segment files",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(s.bytes as i64))?;
        let t = self.0.timings();
        let histograms = [
            (
                "hkms_audit_record_wait_seconds",
                "Time a request waited from submitting its audit record until the record was durable (or refused)",
                &t.waited,
            ),
            (
                "hkms_audit_sync_seconds",
                "Time to write one group of audit records and sync it to disk (the count is the number of syncs attempted)",
                &t.synced,
            ),
        ];
        for (name, help, h) in histograms {
            encoder
                .encode_descriptor(name, help, None, MetricType::Histogram)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}
