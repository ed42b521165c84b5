//! Exposure on controlled likelihoods where the answer is known in advance, so the computation is checked, not
//! assumed: the secret's rank is set by the scorer, and the normal fit is checked against a closed-form value.

use karte_core::Result;
use karte_eval::canary::{self, exposure_from_scores, make_kit, Scorer};
use std::cell::Cell;

/// Gives the true secret log-likelihood −5 and exactly `above` of the alternatives −1 (more likely), the rest −10.
struct KnownRank {
    secret: String,
    above: usize,
}

impl Scorer for KnownRank {
    fn score(&self, _context: &str, conts: &[String]) -> Result<Vec<f64>> {
        let mut given = 0;
        Ok(conts
            .iter()
            .map(|c| {
                if *c == self.secret {
                    -5.0
                } else if given < self.above {
                    given += 1;
                    -1.0
                } else {
                    -10.0
                }
            })
            .collect())
    }
}

#[test]
fn sampled_rank_exposure_matches_the_known_rank() {
    let kit = make_kit(1, &[1], 3).unwrap();
    let secret = kit.canaries[0].secret.clone();
    // (alternatives ranked above the secret, expected rank, expected exposure = log2(K+1) − log2(rank)) with K = 99.
    let table: [(usize, usize, f64); 4] = [
        (0, 1, 100f64.log2()),
        (1, 2, 50f64.log2()),
        (9, 10, 10f64.log2()),
        (99, 100, 0.0),
    ];
    for (above, rank, want) in table {
        let s = KnownRank {
            secret: secret.clone(),
            above,
        };
        let r = canary::measure("ctl", &s, &kit, 99, 11, &mut |_, _| {}).unwrap();
        let e = &r.canaries[0];
        assert_eq!(e.rank, rank, "above={above}");
        assert!(
            (e.sampled_rank - want).abs() < 1e-12,
            "above={above}: {} vs {want}",
            e.sampled_rank
        );
        assert!((e.sampled_rank_max - 100f64.log2()).abs() < 1e-12);
    }
}

#[test]
fn ties_count_against_the_secret() {
    // Carlini's rank is conservative: an alternative as likely as the secret ranks above it.
    let (rank, exp, _) = exposure_from_scores(-2.0, &[-2.0, -2.0, -3.0], 36.5);
    assert_eq!(rank, 3);
    assert!((exp - (4f64.log2() - 3f64.log2())).abs() < 1e-12);
}

#[test]
fn normal_fit_matches_the_closed_form() {
    // Alternatives at −9 and −11 alternately: mean −10, sd 1. A secret at −7 is 3 sd more likely:
    // exposure = −log2 Φ(−3) = −log2(0.0013498980316301) = 9.5330…
    let alt: Vec<f64> = (0..1000)
        .map(|i| if i % 2 == 0 { -9.0 } else { -11.0 })
        .collect();
    let (rank, _, fit) = exposure_from_scores(-7.0, &alt, 36.54);
    assert_eq!(rank, 1);
    let want = -(0.001_349_898_031_630_1f64).log2();
    assert!((fit.unwrap() - want).abs() < 1e-4, "{fit:?} vs {want}");
    // At the mean, half the space is at least as likely: exposure 1 bit.
    let (_, _, fit) = exposure_from_scores(-10.0, &alt, 36.54);
    assert!((fit.unwrap() - 1.0).abs() < 1e-6, "{fit:?}");
    // Far in the tail the estimate extrapolates past log2(K+1) without underflow: Φ(−20) = 2.7536e-89.
    let (_, sampled, fit) = exposure_from_scores(10.0, &alt, 1000.0);
    let want = -(2.753_624_118_606_2e-89f64).log2();
    assert!(sampled <= 1001f64.log2());
    assert!(
        (fit.unwrap() - want).abs() / want < 1e-5,
        "{fit:?} vs {want}"
    );
}

#[test]
fn kit_is_reproducible_valid_and_round_trips() {
    let a = make_kit(4, &[1, 10, 100], 9).unwrap();
    let b = make_kit(4, &[1, 10, 100], 9).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, make_kit(4, &[1, 10, 100], 10).unwrap());
    assert_eq!(a.canaries.len(), 12);
    for c in &a.canaries {
        assert!(
            karte_guard::checkdigit::my_number_valid(&c.secret),
            "{}",
            c.secret
        );
        assert!(c.text.contains("マイナンバー"));
        // karte-guard recognises the canary's secret as personal data: a leak of it would be caught.
        assert!(karte_guard::scan(&c.text)
            .iter()
            .any(|f| f.text.contains(&c.secret)));
    }
    let lines = canary::training_lines(&a);
    assert_eq!(lines.len(), 4 * (1 + 10 + 100));
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(canary::parse_kit(&json).unwrap(), a);
    let tampered = json.replacen(&a.canaries[0].secret, "123456789012", 1);
    assert_eq!(
        canary::parse_kit(&tampered).unwrap_err().code,
        karte_core::Code::EvalKitInvalid
    );
    assert_eq!(
        canary::parse_kit("{").unwrap_err().code,
        karte_core::Code::EvalKitInvalid
    );
    assert_eq!(
        make_kit(0, &[1], 1).unwrap_err().code,
        karte_core::Code::EvalKitInvalid
    );
}

#[test]
fn samples_are_fresh_valid_secrets_and_seeded() {
    struct Record(Cell<Vec<String>>);
    impl Scorer for Record {
        fn score(&self, _c: &str, conts: &[String]) -> Result<Vec<f64>> {
            self.0.set(conts.to_vec());
            Ok(vec![0.0; conts.len()])
        }
    }
    let kit = make_kit(1, &[1], 5).unwrap();
    let rec = Record(Cell::new(vec![]));
    canary::measure("x", &rec, &kit, 200, 1, &mut |_, _| {}).unwrap();
    let first = rec.0.take();
    assert_eq!(first.len(), 201);
    assert_eq!(first[0], kit.canaries[0].secret);
    assert!(first[1..]
        .iter()
        .all(|s| *s != first[0] && karte_guard::checkdigit::my_number_valid(s)));
    canary::measure("x", &rec, &kit, 200, 1, &mut |_, _| {}).unwrap();
    assert_eq!(rec.0.take(), first);
}
