//! A dataset's compaction scheduler: SlateDB's size-tiered scheduler, and a full merge of a
//! tree once it has been quiet, so that removed data leaves the store (issue 17;
//! docs/data-path.md, "Collection and space").
//!
//! Size-tiered compaction merges L0 tables only once `min_compaction_sources` (4) of them
//! wait, and sorted runs only once four of similar size exist. Tombstones merge with the data
//! they delete only in a compaction that holds both, and are dropped only when its
//! destination is the oldest run, so a dataset whose last writes left two or three L0 tables
//! (the data, then the orphan purge's flush of the tombstones) keeps every removed byte for
//! as long as nothing else is written, whatever the collector does. This scheduler proposes
//! what size-tiered proposes; when that is nothing, and a tree has kept the same two or more
//! sources (L0 tables and sorted runs) for `quiet`, it merges all of them into the oldest run
//! (a fresh run when there are only L0 tables), which drops the tombstones and what they
//! shadow. The collector then deletes the inputs once they are `gc_min_age_ms` old.
//!
//! It cannot loop: a tree of one source is never merged, a set of sources already proposed
//! once is not proposed again (a merge that failed waits for the tree to change), and a marker
//! makes a tree one that asks for nothing more. A quiet dataset is not rewritten again and
//! again: after its merge it has one run (and a marker) until something new is flushed. What
//! it costs is one rewrite of the tree's live data per quiet period that follows a change, and
//! a marker (a small PUT and a manifest update) per quiet period after a compaction.
//!
//! The quiet period travels in `CompactorOptions::scheduler_options` under [`QUIET_KEY`] (set
//! for datasets by `maintenance::apply_dataset`), so that `Store::open_db` needs no argument
//! for it; without the key (the catalog) this is size-tiered alone.
//!
//! The merge must also leave its inputs collectable. SlateDB's collector never deletes a
//! compacted table newer than the tree's newest L0 table (its guard for an L0 written but not
//! yet in the manifest), and once a tree has no L0 left, that bound is the newest L0 ever
//! merged, which itself stays. Every compaction's run is newer than its L0 inputs, so what a
//! compaction replaced can stay in the store for as long as nothing new is flushed (forever on a
//! quiet dataset). Two rules, on a quiet tree, with a *marker* (one key, then a memtable flush,
//! so a fresh small L0; asked of the writer through [`MarkerRequests`]):
//! - a tree to be merged whole (two or more sources, not all of its L0 tables markers) is
//!   merged once its newest L0 is at most [`MARKER_MAX_BYTES`] and newer, to the millisecond the
//!   collector compares, than every table of its runs; until then a marker is asked for;
//! - a tree that is not to be merged but has runs and no marker L0 newer than all of them gets
//!   a marker, which moves the collector's bound past the runs. The marker then stays an L0 of
//!   its own (not merged: a tree whose only L0 tables are markers is left alone), so a settled
//!   tree is one run and one marker of a few hundred bytes.
//!
//! A marker asked for and not seen is asked for again after [`MARKER_RETRY_QUIETS`] quiet
//! periods (a failed write or flush is logged by the writer's task).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use slatedb::bytes::Bytes;
use slatedb::compactor::{
    CompactionRequest, CompactionScheduler, CompactionSchedulerSupplier, CompactionSpec,
    CompactorStateView, SizeTieredCompactionSchedulerSupplier, SourceId,
};
use slatedb::config::CompactorOptions;
use slatedb::manifest::{SortedRun, SsTableView};

/// `scheduler_options` key of the quiet period, in milliseconds; absent or 0: no full merge.
pub const QUIET_KEY: &str = "slatefs.collect_quiet_ms";

/// The newest L0 table a full merge may end with: what stays in the store after it.
pub const MARKER_MAX_BYTES: u64 = 1 << 20;

/// How long a marker asked for may take to show up as an L0 before it is asked for again.
const MARKER_RETRY_QUIETS: u32 = 5;

/// The writer's key a marker writes: outside every prefix the filesystem reads (`fs/codec.rs`).
pub const MARKER_KEY: &[u8] = b"~slatefs.collect-marker";

/// Marker requests from a dataset's scheduler to the task that writes them
/// ([`spawn_marker_writer`]).
pub type MarkerRequests = Arc<Notify>;

/// Supplies [`CollectScheduler`] to the compactor `Store::open_db` builds.
#[derive(Default)]
pub struct CollectSchedulerSupplier {
    pub markers: MarkerRequests,
}

impl CompactionSchedulerSupplier for CollectSchedulerSupplier {
    fn compaction_scheduler(
        &self,
        options: &CompactorOptions,
    ) -> Box<dyn CompactionScheduler + Send + Sync> {
        // Size-tiered warns about keys it does not know: it gets the options without ours.
        let mut inner_options = options.clone();
        let quiet = inner_options
            .scheduler_options
            .remove(QUIET_KEY)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        let inner = SizeTieredCompactionSchedulerSupplier::new().compaction_scheduler(&inner_options);
        match quiet {
            Some(quiet) => Box::new(CollectScheduler::new(inner, quiet, self.markers.clone())),
            None => inner,
        }
    }
}

/// What the scheduler remembers of one tree between polls.
struct Watch {
    /// The tree's sources at the last poll, newest first.
    sources: Vec<SourceId>,
    /// When they last changed (or were first seen).
    since: Instant,
    /// The sources of the last full merge proposed for this tree.
    proposed: Option<Vec<SourceId>>,
    /// The sources when a marker was last asked for, and when.
    marker_asked: Option<(Vec<SourceId>, Instant)>,
}

/// Size-tiered compaction, and a full merge of a tree quiet for `quiet` (see the module).
pub struct CollectScheduler {
    inner: Box<dyn CompactionScheduler + Send + Sync>,
    quiet: Duration,
    markers: MarkerRequests,
    /// By segment prefix (the root tree's is empty).
    watches: Mutex<HashMap<Bytes, Watch>>,
}

/// One tree of the manifest, as the public API shows it.
struct Tree<'a> {
    prefix: Bytes,
    l0: Vec<&'a SsTableView>,
    runs: &'a [SortedRun],
}

impl Tree<'_> {
    /// Every source, in the order SlateDB's validation wants: L0 newest to oldest, then the
    /// sorted runs from the highest id (newest) to the lowest.
    fn sources(&self) -> Vec<SourceId> {
        self.l0
            .iter()
            .map(|v| SourceId::SstView(v.id))
            .chain(self.runs.iter().map(|r| SourceId::SortedRun(r.id)))
            .collect()
    }

    fn bytes(&self) -> u64 {
        self.l0.iter().map(|v| v.estimate_size()).sum::<u64>()
            + self.runs.iter().map(|r| r.estimate_size()).sum::<u64>()
    }

    /// Whether a full merge now leaves every input collectable but the newest L0 (see the
    /// module): that L0 is small and newer, to the millisecond the collector compares, than
    /// every table of the runs.
    fn ends_with_a_small_newest_l0(&self) -> bool {
        self.newest_l0_is_newer_than_the_runs(|v| v.estimate_size() <= MARKER_MAX_BYTES)
    }

    /// Whether the collector's bound (the newest L0, or with none the newest L0 ever merged)
    /// keeps tables that earlier compactions replaced: the runs are not all older than a live
    /// marker. A tree without runs has had nothing merged.
    fn keeps_merged_tables(&self) -> bool {
        !self.runs.is_empty() && !self.newest_l0_is_newer_than_the_runs(is_marker)
    }

    fn newest_l0_is_newer_than_the_runs(&self, and: impl Fn(&SsTableView) -> bool) -> bool {
        let Some(newest) = self.l0.iter().max_by_key(|v| v.sst.id.value()) else {
            return false;
        };
        let newest_ms = newest.sst.id.value().timestamp_ms();
        and(newest)
            && self
                .runs
                .iter()
                .flat_map(|r| r.sst_views())
                .all(|v| v.sst.id.value().timestamp_ms() < newest_ms)
    }
}

/// An L0 table holding nothing but the marker key: what [`write_marker`] flushes when the
/// memtable held nothing else.
fn is_marker(v: &SsTableView) -> bool {
    let info = &v.sst.info;
    info.first_entry.as_deref() == Some(MARKER_KEY) && info.last_entry.as_deref() == Some(MARKER_KEY)
}

fn trees(state: &CompactorStateView) -> Vec<Tree<'_>> {
    let m = state.manifest();
    let mut trees = vec![Tree { prefix: Bytes::new(), l0: m.l0().iter().collect(), runs: m.compacted() }];
    for s in m.segments() {
        trees.push(Tree { prefix: s.prefix().clone(), l0: s.l0().iter().collect(), runs: s.compacted() });
    }
    trees
}

impl CollectScheduler {
    pub fn new(inner: Box<dyn CompactionScheduler + Send + Sync>, quiet: Duration, markers: MarkerRequests) -> Self {
        CollectScheduler { inner, quiet, markers, watches: Mutex::new(HashMap::new()) }
    }

    /// The full merges due at `now`, after noting each tree's sources.
    fn full_merges(&self, state: &CompactorStateView, now: Instant, propose: bool) -> Vec<CompactionSpec> {
        let trees = trees(state);
        let active: Vec<&CompactionSpec> = state
            .compactions()
            .into_iter()
            .flat_map(|c| c.recent_compactions())
            .filter(|c| c.active())
            .map(|c| c.spec())
            .collect();
        // Sorted-run ids are unique across trees and in-flight destinations reserve theirs,
        // as size-tiered's own fresh ids do.
        let mut next_fresh = trees
            .iter()
            .flat_map(|t| t.runs.iter().map(|r| r.id))
            .chain(active.iter().filter_map(|s| s.destination()))
            .max()
            .map_or(0, |id| id.saturating_add(1));
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.retain(|prefix, _| trees.iter().any(|t| t.prefix == *prefix));
        let mut specs = Vec::new();
        for tree in &trees {
            let sources = tree.sources();
            let watch = watches
                .entry(tree.prefix.clone())
                .or_insert_with(|| Watch { sources: sources.clone(), since: now, proposed: None, marker_asked: None });
            if watch.sources != sources {
                watch.sources = sources.clone();
                watch.since = now;
            }
            if !propose
                || sources.is_empty()
                || now.duration_since(watch.since) < self.quiet
                || watch.proposed.as_ref() == Some(&sources)
                // A compaction in flight in this tree holds some of its sources (and SlateDB
                // runs one L0 compaction per tree at a time).
                || active.iter().any(|s| s.segment() == &tree.prefix)
            {
                continue;
            }
            // Only the root tree is written by slatefs (no segment extractor), so only there can
            // a marker land; elsewhere a quiet tree of two or more sources is merged as it is.
            let merge = sources.len() >= 2 && !tree.l0.iter().all(|v| is_marker(v));
            let wants_marker = tree.prefix.is_empty()
                && if merge { !tree.ends_with_a_small_newest_l0() } else { tree.keeps_merged_tables() };
            if wants_marker {
                let due = match &watch.marker_asked {
                    Some((asked, at)) => asked != &sources || now.duration_since(*at) >= self.quiet * MARKER_RETRY_QUIETS,
                    None => true,
                };
                if due {
                    tracing::info!(
                        "compaction: a quiet tree of {} sources {}; asking the writer for a marker",
                        sources.len(),
                        if merge {
                            "is to be merged whole, but its newest L0 is not a small table newer than its runs"
                        } else {
                            "has runs newer than its newest L0, so what they replaced cannot be collected"
                        }
                    );
                    watch.marker_asked = Some((sources.clone(), now));
                    self.markers.notify_one();
                }
                continue;
            }
            if !merge {
                continue;
            }
            // The oldest run is the lowest id, the last in the manifest's order: merging into
            // it makes the destination the tree's last run, where tombstones are dropped.
            let destination = match tree.runs.last() {
                Some(oldest) => oldest.id,
                None => {
                    let id = next_fresh;
                    next_fresh = next_fresh.saturating_add(1);
                    id
                }
            };
            tracing::info!(
                "compaction: merging the {} sources ({} L0, {} sorted runs, {} bytes) of a tree quiet for {} ms, to collect what they delete",
                sources.len(),
                tree.l0.len(),
                tree.runs.len(),
                tree.bytes(),
                now.duration_since(watch.since).as_millis()
            );
            watch.proposed = Some(sources.clone());
            specs.push(CompactionSpec::for_segment(tree.prefix.clone(), sources, destination));
        }
        specs
    }
}

impl CompactionScheduler for CollectScheduler {
    fn propose(&self, state: &CompactorStateView) -> Vec<CompactionSpec> {
        let tiered = self.inner.propose(state);
        // While size-tiered has work the tree is changing; the quiet clock still notes it.
        let propose = tiered.is_empty();
        let full = self.full_merges(state, Instant::now(), propose);
        if propose {
            full
        } else {
            tiered
        }
    }

    fn validate(&self, state: &CompactorStateView, spec: &CompactionSpec) -> Result<(), slatedb::Error> {
        // A full merge is a consecutive series ending in the oldest run, merged into it:
        // what size-tiered's own validation accepts.
        self.inner.validate(state, spec)
    }

    fn generate(
        &self,
        state: &CompactorStateView,
        request: &CompactionRequest,
    ) -> Result<Vec<CompactionSpec>, slatedb::Error> {
        self.inner.generate(state, request)
    }
}

/// Writes a marker whenever the dataset's scheduler asks for one, until the database closes:
/// one small key, then a memtable flush, which makes a fresh small L0 table (see the module).
pub fn spawn_marker_writer(db: slatedb::Db, markers: MarkerRequests) {
    let mut status = db.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = markers.notified() => {}
                changed = status.changed() => {
                    if changed.is_err() || status.borrow().close_reason.is_some() {
                        return;
                    }
                    continue;
                }
            }
            if let Err(e) = write_marker(&db).await {
                if db.status().close_reason.is_some() {
                    return;
                }
                tracing::warn!("compaction: cannot write the marker a whole-tree merge waits for: {e}");
            }
        }
    });
}

async fn write_marker(db: &slatedb::Db) -> Result<(), slatedb::Error> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    db.put(MARKER_KEY, stamp.to_be_bytes()).await?;
    db.flush_with_options(slatedb::config::FlushOptions { flush_type: slatedb::config::FlushType::MemTable })
        .await
}
