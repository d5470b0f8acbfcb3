//! Link flags for the bot's executables only (dependencies are not rebuilt for them).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("hot-code.txt");
    // Watched only when it exists: cargo reruns a build script on every build while a watched
    // file is missing, and that rebuilds the crate and everything above it each time.
    if list.is_file() {
        println!("cargo:rerun-if-changed=hot-code.txt");
    }
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    // Packed relative relocations (DT_RELR): the dynamic loader reads ~30 KiB of relocations at
    // start instead of 1.4 MiB of `.rela.dyn`, which otherwise stay resident (docs/BENCHMARKS.md,
    // Memory). glibc reads them since 2.36 (the linker records that version need, so an older
    // glibc refuses the binary with a clear message); musl only since 1.2.4, which the image's
    // Debian toolchain does not have: glibc targets only.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");

    // The functions start-up and ordinary turns run, placed together by the linker
    // (scripts/hot-code.sh writes the list): the kernel maps code 64 KiB around each page that
    // runs, so scattered start-up code kept most of the executable resident. Only optimised
    // builds, and only with LLD (rustc's default linker on x86_64 Linux since 1.90; GNU ld does
    // not know the option).
    if var("PROFILE") == "release"
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && list.is_file()
        && rustc_links_with_lld()
    {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        // The list names functions of other builds and of libc too: not an error.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// rustc 1.90 and later link x86_64 Linux executables with its own LLD unless told otherwise.
fn rustc_links_with_lld() -> bool {
    if std::env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("linker")) {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
