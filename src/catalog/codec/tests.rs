use super::*;

#[test]
fn dataset_records_round_trip() {
    let records = [
        DatasetRecord {
            id: 1,
            state: RecordState::Active,
            name: "root".into(),
            quota: None,
            created_ms: 1_700_000_000_000,
            origin: None,
            database: None,
            successor: None,
            kubernetes: None,
        },
        DatasetRecord {
            id: 7,
            state: RecordState::Creating,
            name: "a.b-c".into(),
            quota: Some(10 << 30),
            created_ms: 5,
            origin: Some(Origin::Dataset { dataset_id: 3 }),
            database: Some(9),
            successor: None,
            kubernetes: Some(KubernetesRef { namespace: "shop".into(), name: "data".into(), content: "pvc-1".into() }),
        },
        DatasetRecord {
            id: (1 << 24) - 1,
            state: RecordState::Deleted,
            name: "x".repeat(253),
            quota: Some(1),
            created_ms: u64::MAX,
            origin: Some(Origin::Snapshot {
                snapshot_id: 9,
                dataset_id: 2,
                checkpoint: Uuid::new_v4(),
            }),
            database: Some(11),
            successor: Some(4),
            kubernetes: Some(KubernetesRef { namespace: "n".repeat(63), name: "x".repeat(253), content: String::new() }),
        },
    ];
    for r in records {
        assert_eq!(DatasetRecord::decode(r.id, &r.encode()).unwrap(), r);
    }
}

#[test]
fn snapshot_records_round_trip() {
    for checkpoint in [None, Some(Uuid::new_v4())] {
        let r = SnapshotRecord {
            id: 12,
            state: RecordState::Active,
            name: "monday".into(),
            dataset_id: 4,
            checkpoint,
            created_ms: 99,
            size_bytes: 200 << 20,
            inodes: 17,
            kubernetes: checkpoint.map(|_| KubernetesRef { namespace: "shop".into(), name: "nightly".into(), content: "snapcontent-1".into() }),
        };
        assert_eq!(SnapshotRecord::decode(12, &r.encode()).unwrap(), r);
    }
}

#[test]
fn layout_is_stable() {
    // The bytes on disk are the contract: a change here needs a new record version.
    let r = DatasetRecord {
        id: 2,
        state: RecordState::Active,
        name: "ab".into(),
        quota: Some(3),
        created_ms: 4,
        origin: Some(Origin::Dataset { dataset_id: 5 }),
        database: None,
        successor: None,
        kubernetes: None,
    };
    assert_eq!(
        r.encode(),
        [
            1, 1, 0, 2, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0,
            0, 0, 0, 0, 0, 0, 5
        ]
    );
    assert_eq!(dataset_key(0x0102), [b'D', 0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(snapshot_key(3), [b'S', 0, 0, 0, 0, 0, 0, 0, 3]);
    assert_eq!(parse_record_key(&snapshot_key(3)).unwrap(), (TAG_SNAPSHOT, 3));
}

#[test]
fn unknown_versions_and_garbage_are_refused() {
    let mut v = DatasetRecord {
        id: 1,
        state: RecordState::Active,
        name: "a".into(),
        quota: None,
        created_ms: 0,
        origin: None,
        database: None,
        successor: None,
        kubernetes: None,
    }
    .encode();
    v[0] = 2;
    let err = DatasetRecord::decode(1, &v).unwrap_err().to_string();
    assert!(err.contains("version 2"), "{err}");
    assert!(DatasetRecord::decode(1, &[1, 1]).is_err());
    assert!(SnapshotRecord::decode(1, &[]).is_err());
    let mut ok = SnapshotRecord {
        id: 1,
        state: RecordState::Active,
        name: "a".into(),
        dataset_id: 1,
        checkpoint: None,
        created_ms: 0,
        size_bytes: 0,
        inodes: 0,
        kubernetes: None,
    }
    .encode();
    // A field cut short is refused; an unknown sized one (0x40 on) is skipped; an unknown
    // fixed one, or one out of order, is refused.
    let plain = ok.clone();
    ok.push(0x41);
    assert!(SnapshotRecord::decode(1, &ok).unwrap_err().to_string().contains("truncated"));
    ok.extend_from_slice(&[0, 2, 9, 9]);
    assert_eq!(SnapshotRecord::decode(1, &ok).unwrap().kubernetes, None);
    ok.extend_from_slice(&[0x40, 0, 0]);
    assert!(SnapshotRecord::decode(1, &ok).unwrap_err().to_string().contains("out of order"));
    let mut fixed = plain.clone();
    fixed.extend_from_slice(&[0x30, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(SnapshotRecord::decode(1, &fixed).unwrap_err().to_string().contains("unknown field"));
    assert!(parse_record_key(b"X12345678").is_err());
    v[0] = 1;
    v.extend_from_slice(&[0x3f, 0, 0, 0, 0, 0, 0, 0, 1]);
    let err = DatasetRecord::decode(1, &v).unwrap_err().to_string();
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn rolled_back_records_keep_the_old_layout_as_a_prefix() {
    let old = DatasetRecord {
        id: 2,
        state: RecordState::Active,
        name: "ab".into(),
        quota: None,
        created_ms: 4,
        origin: None,
        database: None,
        successor: None,
        kubernetes: None,
    };
    let rolled = DatasetRecord { database: Some(7), ..old.clone() };
    let bytes = rolled.encode();
    assert_eq!(&bytes[..old.encode().len()], old.encode().as_slice());
    assert_eq!(&bytes[old.encode().len()..], [0x30, 0, 0, 0, 0, 0, 0, 0, 7]);
    assert_eq!(DatasetRecord::decode(2, &bytes).unwrap().database_id(), 7);
    assert_eq!(DatasetRecord::decode(2, &old.encode()).unwrap().database_id(), 2);
    let intent = RollbackIntent { dataset_id: 2, snapshot_id: 3, hidden_id: 8, database: 9 };
    assert_eq!(RollbackIntent::decode(2, &intent.encode()).unwrap(), intent);
    assert_eq!(parse_record_key(&rollback_key(2)).unwrap(), (TAG_ROLLBACK, 2));
}

#[test]
fn records_written_before_names_existed_decode_unchanged() {
    // The layout_is_stable bytes: a record of an earlier release, without fields.
    let old = [1, 1, 0, 2, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 5];
    let r = DatasetRecord::decode(2, &old).unwrap();
    assert_eq!((r.name.as_str(), r.quota, r.kubernetes.is_none()), ("ab", Some(3), true));
    assert_eq!(r.encode(), old, "a record without names is written as before");
    let names = KubernetesRef { namespace: "ns".into(), name: "db".into(), content: "pv".into() };
    let named = DatasetRecord { kubernetes: Some(names.clone()), ..r.clone() };
    let bytes = named.encode();
    assert_eq!(&bytes[..old.len()], &old[..]);
    let field = [0x40, 0, 12, 0, 2, b'n', b's', 0, 2, b'd', b'b', 0, 2, b'p', b'v'];
    assert_eq!(&bytes[old.len()..], &field[..]);
    assert_eq!(DatasetRecord::decode(2, &bytes).unwrap(), named);
    // A rolled-back record (written by the release before names) reads unchanged, and its
    // names follow its rollback fields.
    let mut rolled = old.to_vec();
    rolled.extend_from_slice(&[0x30, 0, 0, 0, 0, 0, 0, 0, 7, 0x31, 0, 0, 0, 0, 0, 0, 0, 3]);
    let decoded = DatasetRecord::decode(2, &rolled).unwrap();
    assert_eq!((decoded.database, decoded.successor, decoded.kubernetes.clone()), (Some(7), Some(3), None));
    assert_eq!(decoded.encode(), rolled);
    let both = DatasetRecord { kubernetes: Some(names), ..decoded };
    let bytes = both.encode();
    assert_eq!(&bytes[..rolled.len()], &rolled[..]);
    assert_eq!(&bytes[rolled.len()..], &field[..]);
    assert_eq!(DatasetRecord::decode(2, &bytes).unwrap(), both);
}
