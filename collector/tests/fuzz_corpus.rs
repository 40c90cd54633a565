//! Replays the fuzz corpus (`fuzz/corpus/<target>/`: the seeds, what the fuzzer found worth
//! keeping, and every input that once crashed) through the fuzz targets' own entry points, so a
//! plain `cargo test` fails if any of them panics again.

use dataplane_collector::fuzzing::TARGETS;
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");

#[test]
fn every_target_has_a_corpus_and_every_input_runs_clean() {
    let mut total = 0;
    for (name, run) in TARGETS {
        let dir = Path::new(CORPUS).join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for fuzz target {name}");
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} panics on {}",
                f.display()
            );
            total += 1;
        }
    }
    eprintln!(
        "{total} corpus inputs replayed over {} targets",
        TARGETS.len()
    );
}

/// Every target in `TARGETS` has its libFuzzer binary, and every binary a target.
#[test]
fn fuzz_targets_match_the_list() {
    let dir = Path::new(CORPUS).join("../fuzz_targets");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
