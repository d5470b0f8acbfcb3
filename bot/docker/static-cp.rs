//! `cp SOURCE DEST`: the one file copy the operator's `bridge-copy` init container runs to put
//! the static bot binary into a shared volume for MCP sidecars. The bot image has no shell and
//! no coreutils, so this tiny static program stands in for `cp` (built by bot/Dockerfile).
use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, dest] = args.as_slice() else {
        eprintln!("usage: cp SOURCE DEST");
        return ExitCode::from(2);
    };
    let copied = std::fs::copy(source, dest)
        .and_then(|_| std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)));
    match copied {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cp: copying {source} to {dest} failed: {e}");
            ExitCode::FAILURE
        }
    }
}
