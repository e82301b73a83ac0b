//! The catalog database itself: written by the owner through a `Db`, followed by readers
//! through a `DbReader`, loaded whole into a `State`.

use std::collections::BTreeMap;
use std::time::Duration;

use slatedb::config::{DbReaderOptions, Settings};
use slatedb::{Db, DbReader, DbReaderMode, WriteBatch};

use super::codec::{self, DatasetRecord, SnapshotRecord, TAG_DATASET, TAG_SNAPSHOT};
use super::{CatalogError, CatalogResult};
use crate::store::Store;

/// How often a catalog reader looks for new catalog state.
pub const READER_POLL: Duration = Duration::from_millis(500);

/// Everything the catalog holds.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub datasets: BTreeMap<u64, DatasetRecord>,
    pub snapshots: BTreeMap<u64, SnapshotRecord>,
    /// The next id to hand out (1 on a new catalog).
    pub next_id: u64,
    pub default: Option<u64>,
}

// One per process.
#[allow(clippy::large_enum_variant)]
pub enum CatalogDb {
    Owner(Db),
    Reader(DbReader),
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
        Ok(CatalogDb::Owner(db))
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
        matches!(self, CatalogDb::Reader(_))
    }

    /// Reads the whole catalog.
    pub async fn load(&self) -> CatalogResult<State> {
        let mut iter = match self {
            CatalogDb::Owner(db) => db.scan(..).await,
            CatalogDb::Reader(r) => r.scan(..).await,
        }
        .map_err(|e| CatalogError::internal("cannot read the catalog", e))?;
        let mut state = State { next_id: 1, ..State::default() };
        while let Some(kv) =
            iter.next().await.map_err(|e| CatalogError::internal("cannot read the catalog", e))?
        {
            let key = kv.key.as_ref();
            match key {
                codec::KEY_FORMAT => check_format(&kv.value)
                    .map_err(|e| CatalogError::Internal(format!("{e:#}")))?,
                codec::KEY_NEXT_ID => state.next_id = codec::decode_u64("next id", &kv.value)?,
                codec::KEY_DEFAULT => {
                    state.default = Some(codec::decode_u64("default dataset", &kv.value)?)
                }
                _ => match codec::parse_record_key(key)? {
                    (TAG_DATASET, id) => {
                        state.datasets.insert(id, DatasetRecord::decode(id, &kv.value)?);
                    }
                    (TAG_SNAPSHOT, id) => {
                        state.snapshots.insert(id, SnapshotRecord::decode(id, &kv.value)?);
                    }
                    _ => unreachable!("parse_record_key only returns known tags"),
                },
            }
        }
        Ok(state)
    }

    /// Applies a batch and waits until it is durable.
    pub async fn write(&self, batch: WriteBatch) -> CatalogResult<()> {
        let CatalogDb::Owner(db) = self else {
            return Err(CatalogError::FailedPrecondition(
                "this server only reads the catalog ([catalog] role = \"reader\")".into(),
            ));
        };
        db.write(batch).await.map_err(|e| CatalogError::internal("cannot write the catalog", e))?;
        db.flush().await.map_err(|e| CatalogError::internal("cannot flush the catalog", e))?;
        Ok(())
    }

    pub async fn close(&self) -> anyhow::Result<()> {
        match self {
            CatalogDb::Owner(db) => db.close().await?,
            CatalogDb::Reader(r) => r.close().await?,
        }
        Ok(())
    }
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
