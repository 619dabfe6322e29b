//! Digests the workspace's migrations so test databases can be cloned from a
//! template named after exactly the schema they were built from.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

fn main() {
    let root = Path::new("../../migrations");
    println!("cargo:rerun-if-changed=../../migrations");
    let mut hasher = Sha256::new();
    let mut files = Vec::new();
    collect(root, &mut files);
    files.sort();
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(fs::read(&file).unwrap_or_default());
        hasher.update([0]);
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    println!("cargo:rustc-env=TESSERA_MIGRATIONS_DIGEST={digest}");
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
