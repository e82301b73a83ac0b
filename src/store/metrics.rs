//! Read-cache hits and misses, from SlateDB's own metrics.
//!
//! SlateDB counts the parts of every read that goes through its on-disk object-store cache
//! (`slatedb.object_store_cache.part_access_count`) and those the cache served
//! (`…part_hit_count`, when both the part and the object's cached head were on disk), but
//! only reports them to a metrics recorder given to each `Db`/`DbReader` builder. This
//! recorder adds them to the store's request counters, so that one store's hit and miss
//! counts cover every database opened from it and appear wherever request counts do (the
//! periodic and shutdown log lines). Every other metric is dropped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use slatedb::cached_object_store_stats::{PART_ACCESS_COUNT, PART_HIT_COUNT};
use slatedb_common::metrics::{
    CounterFn, GaugeFn, HistogramFn, MetricsRecorder, NoopMetricsRecorder, UpDownCounterFn,
};

use super::accounting::RequestCounters;

pub struct CacheMetrics {
    counters: Arc<RequestCounters>,
    others: NoopMetricsRecorder,
}

impl CacheMetrics {
    pub fn new(counters: Arc<RequestCounters>) -> CacheMetrics {
        CacheMetrics { counters, others: NoopMetricsRecorder::new() }
    }
}

/// A counter handle that adds to one of the store's counters.
struct AddTo {
    counters: Arc<RequestCounters>,
    pick: fn(&RequestCounters) -> &AtomicU64,
}

impl CounterFn for AddTo {
    fn increment(&self, value: u64) {
        (self.pick)(&self.counters).fetch_add(value, Relaxed);
    }
}

impl MetricsRecorder for CacheMetrics {
    fn register_counter(
        &self,
        name: &str,
        description: &str,
        labels: &[(&str, &str)],
    ) -> Arc<dyn CounterFn> {
        let pick: fn(&RequestCounters) -> &AtomicU64 = match name {
            PART_HIT_COUNT => |c| &c.cache_hits,
            PART_ACCESS_COUNT => |c| &c.cache_reads,
            _ => return self.others.register_counter(name, description, labels),
        };
        Arc::new(AddTo { counters: self.counters.clone(), pick })
    }

    fn register_gauge(
        &self,
        name: &str,
        description: &str,
        labels: &[(&str, &str)],
    ) -> Arc<dyn GaugeFn> {
        self.others.register_gauge(name, description, labels)
    }

    fn register_up_down_counter(
        &self,
        name: &str,
        description: &str,
        labels: &[(&str, &str)],
    ) -> Arc<dyn UpDownCounterFn> {
        self.others.register_up_down_counter(name, description, labels)
    }

    fn register_histogram(
        &self,
        name: &str,
        description: &str,
        labels: &[(&str, &str)],
        boundaries: &[f64],
    ) -> Arc<dyn HistogramFn> {
        self.others.register_histogram(name, description, labels, boundaries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counters_reach_the_store_counters_and_the_rest_is_dropped() {
        let counters = Arc::new(RequestCounters::default());
        let m = CacheMetrics::new(counters.clone());
        let access = m.register_counter(PART_ACCESS_COUNT, "", &[]);
        let hits = m.register_counter(PART_HIT_COUNT, "", &[]);
        m.register_counter("slatedb.db.get_requests", "", &[]).increment(7);
        access.increment(5);
        hits.increment(2);
        let s = counters.stats();
        assert_eq!((s.cache_hits, s.cache_misses), (2, 3));
        assert_eq!(s.requests(), 0);
        assert!(s.to_string().ends_with("; read cache hits=2 misses=3"), "{s}");
    }
}
