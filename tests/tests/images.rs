//! The image builds (`bot/Dockerfile`, `operator/Dockerfile`) copy every part of the workspace
//! that cargo reads: the members and the `[patch]` paths. A folder left out only shows when an
//! image is built (no Docker engine runs the tests), as `vendor/` did when serenity was vendored.

use std::collections::BTreeSet;
use std::path::Path;

/// The top-level folders cargo needs to build anything in the workspace.
fn folders_cargo_reads(root: &Path) -> BTreeSet<String> {
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .expect("reading Cargo.toml")
        .parse()
        .expect("parsing Cargo.toml");
    let top = |path: &str| path.split('/').next().unwrap_or(path).to_string();
    let mut folders: BTreeSet<String> = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .filter_map(|m| m.as_str().map(top))
        .collect();
    for registry in manifest
        .get("patch")
        .and_then(|p| p.as_table())
        .into_iter()
        .flat_map(|t| t.values())
    {
        for patch in registry.as_table().into_iter().flat_map(|t| t.values()) {
            if let Some(path) = patch.get("path").and_then(|p| p.as_str()) {
                folders.insert(top(path));
            }
        }
    }
    folders
}

#[test]
fn dockerfiles_copy_every_folder_cargo_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let folders = folders_cargo_reads(&root);
    assert!(
        folders.contains("bot") && folders.contains("vendor"),
        "{folders:?}"
    );
    for dockerfile in ["bot/Dockerfile", "operator/Dockerfile"] {
        let text = std::fs::read_to_string(root.join(dockerfile)).expect(dockerfile);
        let copied: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("COPY "))
            .filter(|l| !l.starts_with("--"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        let missing: Vec<&String> = folders.difference(&copied).collect();
        assert!(
            missing.is_empty(),
            "{dockerfile} does not COPY {missing:?}, which Cargo.toml names"
        );
    }
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    for folder in &folders {
        assert!(
            !ignored.lines().any(|l| l.trim() == folder),
            ".dockerignore leaves out {folder}"
        );
    }
}
