//! SQLCipher against plain SQLite on the store's own statements: `cargo bench -p karte-store`.
//!
//! Both sides are the same bundled SQLCipher library and the same schema (migrations), opened by the same
//! `karte_store::db::open`; the baseline simply sets no key, which makes SQLCipher behave as plain SQLite. Rounds
//! alternate the two so that a noisy machine slows both alike; the table shows the median of the rounds.
//!
//! Work per round and side (10,000 versions): 2,000 encounters saved as drafts (encounter + version 1 with dictation,
//! draft JSON and note text + audit entry), then 4 edits each (8,000 versions), in transactions of 100 writes;
//! 500 further drafts each committed on its own (the real save path: one fsync per save with synchronous=FULL);
//! then reads: the latest version of every encounter (2,000 point queries) and the full history of every encounter
//! (10,000 versions with their text, signatures and suggestion reviews).

use karte_store::{bench, db};
use std::time::Instant;

const ENCOUNTERS: usize = 2_000;
const EDITS: usize = 4;
const SINGLE_COMMITS: usize = 500;
const ROUNDS: usize = 3;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no such flag: do one small round then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (encounters, singles, rounds) = if quick {
        (50, 10, 1)
    } else {
        (ENCOUNTERS, SINGLE_COMMITS, ROUNDS)
    };
    let dictation = "65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。BT 38.6℃、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。".repeat(2);
    let draft = karte_core::draft_floor(&dictation, karte_core::document::default_kind())
        .expect("sample drafts");
    let draft_json = serde_json::to_string(&draft).unwrap();
    let note = draft.document().render();

    let names = [
        "insert (batched)",
        "insert (one commit each)",
        "latest version",
        "history (all versions)",
    ];
    let mut times: [[Vec<f64>; 4]; 2] = Default::default(); // [cipher, plain][op] -> ms per round
    for _ in 0..rounds {
        for (side, encrypted) in [(0, true), (1, false)] {
            let dir = tempfile::tempdir().unwrap();
            let key = db::DbKey::generate().unwrap();
            let c = db::open(&dir.path().join("bench.db"), encrypted.then_some(&key)).unwrap();
            let author = bench::add_author(&c).unwrap();
            let ids: Vec<String> = (0..encounters).map(|i| format!("E{i:012}")).collect();

            let t = Instant::now();
            let mut writes = 0;
            c.execute_batch("BEGIN").unwrap();
            for id in &ids {
                bench::save_draft(&c, id, author, &note, &dictation, &draft_json).unwrap();
                writes += 1;
                if writes % 100 == 0 {
                    c.execute_batch("COMMIT; BEGIN").unwrap();
                }
            }
            for _ in 0..EDITS {
                for id in &ids {
                    bench::edit(&c, id, author, &note).unwrap();
                    writes += 1;
                    if writes % 100 == 0 {
                        c.execute_batch("COMMIT; BEGIN").unwrap();
                    }
                }
            }
            c.execute_batch("COMMIT").unwrap();
            times[side][0].push(t.elapsed().as_secs_f64() * 1e3);

            let t = Instant::now();
            for i in 0..singles {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                bench::save_draft(
                    &c,
                    &format!("S{i:012}"),
                    author,
                    &note,
                    &dictation,
                    &draft_json,
                )
                .unwrap();
                c.execute_batch("COMMIT").unwrap();
            }
            times[side][1].push(t.elapsed().as_secs_f64() * 1e3);

            let t = Instant::now();
            for id in &ids {
                assert_eq!(bench::latest(&c, id).unwrap().0, 1 + EDITS as i64);
            }
            times[side][2].push(t.elapsed().as_secs_f64() * 1e3);

            let t = Instant::now();
            let mut versions = 0;
            for id in &ids {
                versions += bench::history(&c, id).unwrap().versions.len();
            }
            assert_eq!(versions, encounters * (1 + EDITS));
            times[side][3].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }

    let median = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let counts = [
        encounters * (1 + EDITS),
        singles,
        encounters,
        encounters * (1 + EDITS),
    ];
    println!("| operation | rows | SQLCipher ms | plain SQLite ms | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let (c, p) = (median(&times[0][i]), median(&times[1][i]));
        println!(
            "| {name} | {} | {c:.1} | {p:.1} | {:.2} |",
            counts[i],
            c / p
        );
    }
    println!("\n{rounds} rounds, alternating, median shown; per round (SQLCipher / plain, ms):");
    for r in 0..rounds {
        let cells: Vec<String> = times[0]
            .iter()
            .zip(&times[1])
            .map(|(c, p)| format!("{:.0} / {:.0}", c[r], p[r]))
            .collect();
        println!("round {}: {}", r + 1, cells.join(" · "));
    }
}
