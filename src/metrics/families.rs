//! Small helpers over prometheus-client's encoder for metrics whose values are read at scrape
//! time (a [`Collector`](prometheus_client::collector::Collector) writes them): one family,
//! then one sample per label set.

use std::fmt::Error;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::histogram::HistogramSnapshot;

pub type Labels = Vec<(&'static str, String)>;

pub fn counters<'a>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a Labels, u64)>,
) -> Result<(), Error> {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

pub fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> Result<(), Error> {
    let family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(family)
}

pub fn gauges<'a>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a Labels, i64)>,
) -> Result<(), Error> {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        family.encode_family(labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

pub fn histograms<'a, L: EncodeLabelSet + 'a>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a L, &'a HistogramSnapshot)>,
) -> Result<(), Error> {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        family.encode_family(labels)?.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)?;
    }
    Ok(())
}

pub fn histogram(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, h: &HistogramSnapshot) -> Result<(), Error> {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    family.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
}

/// Encodes whatever `collector` writes as one Prometheus text page (format 0.0.4).
pub fn render(collector: impl prometheus_client::collector::Collector) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(collector));
    let mut page = String::new();
    // Writing into a String cannot fail; a collector's own error would leave a partial page,
    // which is still better than none for an operator.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut page, &registry) {
        tracing::warn!("metrics page: {e}");
    }
    page
}

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
