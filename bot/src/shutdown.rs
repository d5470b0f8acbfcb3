//! One owner of shutdown: the binary listens for the signal once ([`on_signal`]) and hands the
//! token to every part, which then stops in its own order (the Discord gateway closes cleanly
//! before the MCP servers stop).

/// SIGTERM (Kubernetes stopping the pod, a plain `kill`) or Ctrl-C, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A token cancelled at the first SIGTERM or Ctrl-C (call it inside the runtime).
#[cfg(feature = "runtime")]
pub fn on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}
