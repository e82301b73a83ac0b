//! The catalog database itself: written by the owner through a `Db`, followed by readers
//! through a `DbReader`, loaded whole into a `State`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use slatedb::config::{DbReaderOptions, Settings};
use slatedb::{Db, DbReader, DbReaderMode, WriteBatch};

use super::codec::{self, DatasetRecord, RollbackIntent, SnapshotRecord, TAG_DATASET, TAG_POLICY, TAG_ROLLBACK, TAG_SNAPSHOT};
use super::policy_record::PolicyRecord;
use super::{CatalogError, CatalogResult};
use crate::store::Store;

/// How often a catalog reader looks for new catalog state.
pub const READER_POLL: Duration = Duration::from_millis(500);

/// Everything the catalog holds.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub datasets: BTreeMap<u64, DatasetRecord>,
    pub snapshots: BTreeMap<u64, SnapshotRecord>,
    /// Snapshot policies by dataset id.
    pub policies: BTreeMap<u64, PolicyRecord>,
    /// Rollbacks under way, by dataset id (docs/rollback.md).
    pub rollbacks: BTreeMap<u64, RollbackIntent>,
    /// The next id to hand out (1 on a new catalog).
    pub next_id: u64,
    pub default: Option<u64>,
}

/// The catalog's keys and values, as a catalog owner publishes them to the servers that
/// follow it over the internal channel (`cluster::CatalogFeed`).
pub type Kvs = crate::cluster::CatalogKvs;

// One per process.
#[allow(clippy::large_enum_variant)]
pub enum CatalogDb {
    /// `feed` carries the whole catalog after every change.
    Owner { db: Db, feed: tokio::sync::watch::Sender<Arc<Kvs>> },
    Reader(DbReader),
    /// A reader fed by the catalog owner over the internal channel: it holds no reader of the
    /// store (whose polling would cost requests while nothing changes).
    Fed,
}

impl CatalogDb {
    pub async fn open_owner(store: &Store) -> anyhow::Result<CatalogDb> {
        let settings = Settings { flush_interval: Some(Duration::from_millis(50)), ..Settings::default() };
        let db = store.open_db(&store.catalog_path(), settings).await?;
        match db.get(codec::KEY_FORMAT).await? {
            Some(v) => check_format(&v)?,
            None => {
                db.put(codec::KEY_FORMAT, codec::encode_format()).await?;
                db.flush().await?;
            }
        }
        let kvs = scan_all(&db).await?;
        let (feed, _) = tokio::sync::watch::channel(Arc::new(kvs));
        Ok(CatalogDb::Owner { db, feed })
    }

    /// The catalog as it is in the store now, read once (a reader opened and closed), for a
    /// server that is then fed by the catalog owner.
    pub async fn read_once(store: &Store) -> anyhow::Result<State> {
        let reader = CatalogDb::open_reader(store).await?;
        let state = reader.load().await;
        if let Err(e) = reader.close().await {
            tracing::debug!("closing the catalog reader: {e:#}");
        }
        Ok(state?)
    }

    /// What followers of a catalog owner subscribe to.
    pub fn feed(&self) -> Option<tokio::sync::watch::Receiver<Arc<Kvs>>> {
        match self {
            CatalogDb::Owner { feed, .. } => Some(feed.subscribe()),
            _ => None,
        }
    }

    pub async fn open_reader(store: &Store) -> anyhow::Result<CatalogDb> {
        let path = store.catalog_path();
        let reader = DbReader::builder(path.clone(), store.object_store().clone())
            .with_reader_mode(DbReaderMode::ManagedCheckpoint)
            .with_options(DbReaderOptions {
                manifest_poll_interval: READER_POLL,
                checkpoint_lifetime: Duration::from_secs(60),
                ..DbReaderOptions::default()
            })
            .build()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot follow the catalog at {path} ({e}); with [catalog] role = \"reader\" \
                     the catalog must already exist: start its owner first"
                )
            })?;
        if let Some(v) = reader.get(codec::KEY_FORMAT).await? {
            check_format(&v)?;
        }
        Ok(CatalogDb::Reader(reader))
    }

    pub fn is_reader(&self) -> bool {
        !matches!(self, CatalogDb::Owner { .. })
    }

    /// Reads the whole catalog.
    pub async fn load(&self) -> CatalogResult<State> {
        let kvs = match self {
            CatalogDb::Owner { db, .. } => scan_all(db).await,
            CatalogDb::Reader(r) => scan_reader(r).await,
            CatalogDb::Fed => {
                return Err(CatalogError::Internal("this server is fed the catalog by its owner".into()))
            }
        }
        .map_err(|e| CatalogError::internal("cannot read the catalog", e))?;
        decode(&kvs)
    }

    /// Applies a batch and waits until it is durable.
    pub async fn write(&self, batch: WriteBatch) -> CatalogResult<()> {
        let CatalogDb::Owner { db, feed } = self else {
            return Err(CatalogError::FailedPrecondition(
                "this server only reads the catalog ([catalog] role = \"reader\")".into(),
            ));
        };
        db.write(batch).await.map_err(|e| CatalogError::internal("cannot write the catalog", e))?;
        db.flush().await.map_err(|e| CatalogError::internal("cannot flush the catalog", e))?;
        // Always, not only while somebody follows: a follower's stream starts with this value.
        let kvs = scan_all(db).await.map_err(|e| CatalogError::internal("cannot read the catalog", e))?;
        feed.send_replace(Arc::new(kvs));
        Ok(())
    }

    pub async fn close(&self) -> anyhow::Result<()> {
        match self {
            CatalogDb::Owner { db, .. } => db.close().await?,
            CatalogDb::Reader(r) => r.close().await?,
            CatalogDb::Fed => {}
        }
        Ok(())
    }
}

async fn scan_all(db: &Db) -> Result<Kvs, slatedb::Error> {
    collect(db.scan(..).await?).await
}

async fn scan_reader(r: &DbReader) -> Result<Kvs, slatedb::Error> {
    collect(r.scan(..).await?).await
}

async fn collect(mut iter: slatedb::DbIterator) -> Result<Kvs, slatedb::Error> {
    let mut kvs = Vec::new();
    while let Some(kv) = iter.next().await? {
        kvs.push((kv.key.to_vec(), kv.value.to_vec()));
    }
    Ok(kvs)
}

/// The state the catalog's keys and values describe.
pub fn decode(kvs: &Kvs) -> CatalogResult<State> {
    let mut state = State { next_id: 1, ..State::default() };
    for (key, value) in kvs {
        match key.as_slice() {
            codec::KEY_FORMAT => check_format(value).map_err(|e| CatalogError::Internal(format!("{e:#}")))?,
            codec::KEY_NEXT_ID => state.next_id = codec::decode_u64("next id", value)?,
            codec::KEY_DEFAULT => state.default = Some(codec::decode_u64("default dataset", value)?),
            k => match codec::parse_record_key(k)? {
                (TAG_DATASET, id) => {
                    state.datasets.insert(id, DatasetRecord::decode(id, value)?);
                }
                (TAG_SNAPSHOT, id) => {
                    state.snapshots.insert(id, SnapshotRecord::decode(id, value)?);
                }
                (TAG_POLICY, id) => {
                    state.policies.insert(id, PolicyRecord::decode(id, value)?);
                }
                (TAG_ROLLBACK, id) => {
                    state.rollbacks.insert(id, RollbackIntent::decode(id, value)?);
                }
                _ => unreachable!("parse_record_key only returns known tags"),
            },
        }
    }
    Ok(state)
}

fn check_format(v: &[u8]) -> anyhow::Result<()> {
    let format = codec::decode_format(v)?;
    if format != codec::CATALOG_FORMAT {
        anyhow::bail!(
            "the catalog has format version {format}; this slatefs reads version {}",
            codec::CATALOG_FORMAT
        );
    }
    Ok(())
}
