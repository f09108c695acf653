//! Every fuzz target's checks, run by the ordinary test suite on the stable toolchain.
//!
//! The targets' bodies live in `fuzz/targets/` and are compiled here as they are, so a parser
//! change that breaks a check on a known input fails `cargo test`, not only a libFuzzer run
//! that needs nightly and a build of its own (`scripts/fuzz`, docs/security.md "Fuzzing").
//! Each target gets, in order: every checked-in input (`fuzz/corpus/TARGET/`: seeds and the
//! inputs of bugs found so far), then a fixed number of cheap mutations of them (bytes
//! flipped, cut, repeated, spliced), drawn from a fixed seed so that a failure reproduces.
//! This is not coverage-guided fuzzing; it keeps what fuzzing found from coming back.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

#[allow(dead_code, clippy::unwrap_used)]
#[path = "../fuzz/targets/lib.rs"]
mod targets;

/// Mutations per target, beyond the corpus itself.
const MUTATIONS: usize = 2_000;

/// The longest input a mutation may grow to, as `scripts/fuzz` bounds libFuzzer's.
const MAX_LEN: usize = 8_192;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect()
}

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`; `other` is another corpus entry to splice from.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = [0, 0xff, b'\r', b'\n', b'=', b'&', b'%', b';', b',', b'"'][rng.below(10)];
            }
            2 => out.truncate(at),
            3 if at < out.len() => {
                let end = at + rng.below(out.len() - at + 1);
                out.drain(at..end);
            }
            4 if at < out.len() => {
                let end = at + 1 + rng.below((out.len() - at).min(64));
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = from + 1 + rng.below(other.len() - from);
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out.truncate(MAX_LEN);
    out
}

thread_local! {
    /// Set while this thread runs a target: its expected panics are counted, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `run(input)`, telling whether its checks held. The panic hook is process-wide and
/// tests run on parallel threads, so it is installed once and keeps quiet only on the thread
/// that is replaying; every other panic (a test's own assertion) prints as usual.
fn holds(run: fn(&[u8]), input: &[u8]) -> bool {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let held = panic::catch_unwind(AssertUnwindSafe(|| run(input))).is_ok();
    QUIET.with(|q| q.set(false));
    held
}

/// Runs `run` on each corpus input and on `MUTATIONS` mutations; fails naming every input
/// whose checks failed (the mutated ones are written out, to rerun under libFuzzer).
fn replay(target: &str, run: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(!inputs.is_empty(), "fuzz/corpus/{target} holds no inputs");
    let mut failures = Vec::new();
    for (path, bytes) in &inputs {
        if !holds(run, bytes) {
            failures.push(path.display().to_string());
        }
    }
    let mut rng = Rng(0x5eed ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    for i in 0..MUTATIONS {
        let base = &inputs[i % inputs.len()].1;
        let other = &inputs[rng.below(inputs.len())].1;
        let input = mutate(&mut rng, base, other);
        if !holds(run, &input) {
            let out = std::env::temp_dir().join(format!("s3gate-fuzz-{target}-mutation-{i}"));
            let _ = std::fs::write(&out, &input);
            failures.push(out.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: checks failed on {} input(s); rerun with `cargo +nightly fuzz run {target} FILE`:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name), targets::$name::run);
            }
        )*

        /// Every target in `fuzz/targets/lib.rs` has a test here and a corpus directory.
        #[test]
        fn every_target_is_replayed() {
            let lib = include_str!("../fuzz/targets/lib.rs");
            let declared: Vec<&str> = lib
                .lines()
                .filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';'))
                .collect();
            assert_eq!(declared, [$(stringify!($name)),*]);
        }
    };
}

replay_tests!(
    chunked_decoder,
    classify,
    complete_multipart_xml,
    config_toml,
    delete_objects_xml,
    forward_allow,
    policy_json,
    post_policy,
    proxy_protocol,
    session_token,
    sigv4_authorization,
    sigv4_presigned,
    sts_form,
    tls_client_hello,
);
