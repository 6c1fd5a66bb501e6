//! Replays the fuzz corpus on stable Rust: every seed under
//! `fuzz/corpus/<target>/` and every crash input cargo-fuzz saved under
//! `fuzz/artifacts/<target>/` goes through the same entry point as the fuzz
//! target of that name (`vault_csi::fuzzing`), which panics when an
//! invariant breaks.  The fuzzer itself needs nightly and runs by hand
//! (fuzz/README.md); this keeps what it found fixed in CI.

use std::path::{Path, PathBuf};

/// A fuzz target's shared entry point: raw bytes in, a panic on a broken invariant.
type EntryPoint = fn(&[u8]);

/// The fuzz targets and their shared entry points.
const TARGETS: &[(&str, EntryPoint)] = &[
    ("parse_objects", vault_csi::fuzzing::parse_objects),
    ("parse_attributes", vault_csi::fuzzing::parse_attributes),
];

/// Files (not dotfiles such as `.gitkeep`) directly in `dir`, sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read a fuzz directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Every target directory under `fuzz/<kind>/` has a target here, so a new
/// fuzz target cannot be left out of the replay.
fn assert_known_targets(kind: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{kind}/{name} has no entry in TARGETS"
            );
        }
    }
}

#[test]
fn every_corpus_seed_and_crash_input_replays_without_a_panic() {
    assert_known_targets("corpus");
    assert_known_targets("artifacts");
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, entry_point) in TARGETS {
        let seeds = inputs(&fuzz.join("corpus").join(target));
        // The seeds are committed: an empty list means a moved or lost corpus.
        assert!(
            seeds.len() >= 10,
            "fuzz/corpus/{target} has {} seeds",
            seeds.len()
        );
        let crashes = inputs(&fuzz.join("artifacts").join(target));
        for file in seeds.iter().chain(&crashes) {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| entry_point(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", file.display());
        }
    }
}

#[test]
fn the_seeds_include_inputs_that_parse() {
    // Seeds that parse lead the fuzzer into the validation code behind the
    // parser; check that they still do.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_objects");
    for name in [
        "valid-kv-pki.yaml",
        "valid-flow.yaml",
        "anchors-shared-path.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let objects = vault_csi::spc::parse_objects(&text)
            .unwrap_or_else(|e| panic!("{name}: {}", e.message));
        assert!(!objects.is_empty(), "{name}");
    }
}
