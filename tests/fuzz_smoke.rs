//! The fuzz targets' smoke run on stable: every entry of
//! `nhi_exporter::fuzzing` over its seed corpus (`fuzz/corpus/<target>/`)
//! and a few thousand deterministic mutations of it (bit flips,
//! truncations, insertions of bytes and tokens, the canary planted in a
//! string, splices of two seeds), each checked for panics and for the
//! invariants the entries assert. Plus the inputs the long campaign
//! (`scripts/fuzz.sh`, libFuzzer on nightly) found, as regressions.
//!
//! Deterministic: a xorshift PRNG seeded by a constant, so a failure
//! names a target and a mutation number that reproduce it.

use nhi_exporter::fuzzing::{CANARY, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Mutated inputs per target.
const MUTATIONS: usize = 2_500;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{target}: no seed in {}", dir.display());
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that matter to the parsers' grammars (JSON, YAML, CSV, JWT).
const TOKENS: &[&[u8]] = &[
    b"CANARY",
    b"\"CANARY\"",
    b"null",
    b"[]",
    b"{}",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"-1",
    b"0",
    b"1e999",
    b"99999999999999999999",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\t",
    b"\xEF\xBB\xBF",
    b"\xFF",
    b"${CANARY}",
    b"$$",
    b"- ",
    b": CANARY\n",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"AKIAIOSFODNN7EXAMPLE",
    b"abc8Q~FAKEfakeFAKEfakeFAKEfakeFAKEfake12",
    b"11111111-2222-3333-4444-555555555555",
    b"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2ln",
    b"0001-01-01T00:00:00Z",
    b"2026-13-45T99:99:99Z",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 => d.truncate(rng.below(len + 1)),
            2 => {
                let b = rng.next() as u8;
                d.insert(rng.below(len + 1), b);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                d.splice(at..at, t.iter().copied());
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                d.drain(a..b);
            }
            5 => {
                // Splice: a prefix of this input, a suffix of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            6 => {
                // The canary in place of a string's content.
                let quotes: Vec<usize> = d
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'"')
                    .map(|(i, _)| i)
                    .collect();
                if quotes.len() >= 2 {
                    let q = rng.below(quotes.len() - 1);
                    let (a, b) = (quotes[q] + 1, quotes[q + 1]);
                    d.splice(a..b, CANARY.bytes());
                }
            }
            _ if len > 0 => {
                // Duplicate a range (repeated keys, nested structures).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = d[a..b].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    d
}

fn run(target: &str, f: fn(&[u8]), input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let shown = String::from_utf8_lossy(&input[..input.len().min(4096)]);
        panic!(
            "{target}: {what} fails; input ({} bytes): {shown:?}",
            input.len()
        );
    }
}

#[test]
fn every_target_survives_its_seeds_and_their_mutations() {
    for (i, (target, f)) in TARGETS.iter().enumerate() {
        let seeds = seeds(target);
        for (n, s) in seeds.iter().enumerate() {
            run(target, *f, s, &format!("seed {n}"));
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        for n in 0..MUTATIONS {
            let input = mutate(&mut rng, &seeds);
            run(target, *f, &input, &format!("mutation {n}"));
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_target_and_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (target, _) in TARGETS {
        let src = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(
            text.contains(&format!("nhi_exporter::fuzzing::{target}(data)")),
            "{} does not call its entry",
            src.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} missing from fuzz/Cargo.toml"
        );
        assert!(fuzz_dir().join("corpus").join(target).is_dir());
    }
}

/// The canary check is real: an error that quotes its input fails it.
#[test]
fn the_canary_check_catches_an_echo() {
    let r = catch_unwind(|| {
        nhi_exporter::fuzzing::config(b"global:\n  log_level: CANARY-secret\n");
    });
    // `log_level` is an enum: its error says what was expected, not what
    // was there, so the entry passes...
    assert!(r.is_ok());
    // ...and a key named like the canary may be echoed (keys are named).
    nhi_exporter::fuzzing::config(b"global:\n  CANARY_key: 1\n");
}

/// Inputs found by the campaign or by review, kept as regressions.
#[test]
fn regressions() {
    // Quadratic links: every (GUID, client secret) pair of a finding was a
    // link (200 of each: 40,000 links from 16 kB).
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!(
            "{i:08x}-2222-3333-4444-555555555555 x{:02}8Q~FAKEfakeFAKEfakeFAKEfakeFAKEfake12\n",
            i % 100
        ));
    }
    nhi_exporter::fuzzing::credential_links(text.as_bytes());

    // The ASan campaign (web_config): a canary in a key (`type:CA NARY…`
    // is one plain key) of YAML that does not parse as a tree further on
    // was taken for a value quoted in the error; keys are named by design.
    let key =
        std::fs::read(fuzz_dir().join("corpus/web_config/canary-in-a-key-of-unparsable-yaml.yml"))
            .expect("regression input");
    nhi_exporter::fuzzing::web_config(&key);
    // Same campaign: a document that is one string holding the words
    // "unknown variant" was quoted up to them in the error.
    let marker =
        std::fs::read(fuzz_dir().join("corpus/web_config/marker-inside-a-quoted-value.yml"))
            .expect("regression input");
    nhi_exporter::fuzzing::web_config(&marker);
}
